package loadgen

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// maxPacerSleep bounds one sleep of the pacer, so that it notices the end of
// the run even at a low rate.
const maxPacerSleep = 50 * time.Millisecond

// pacer sends the latency workload's messages: every pair's, in the order
// they are due, from one goroutine. Go's timers would not do: the runtime's
// network poller sleeps with a millisecond's granularity, so a timer fires
// up to a millisecond late, and latency measured from the due time would
// count that against the server. The pacer instead runs locked to an OS
// thread that sleeps in the kernel until each message is due (see
// sleeper), and records how late each send still begins: the load
// generator's own error, reported apart from the latency.
type pacer struct {
	r        *run
	pairs    []*pair
	base     time.Time     // the clock of payload times, monotonic
	interval time.Duration // between two messages of one pair
	inWindow func(t int64) bool
	// senders, when set, is how many goroutines make the sends, handed
	// each as it falls due, so that a send that waits (a long-poll POST
	// round trip) holds up no other; a pair's messages may then arrive out
	// of order. Zero: the pacer sends them itself, in order.
	senders int

	sent atomic.Int64 // messages due in the window and sent
	lag  histogram    // how late the sending of those began
}

// due returns when message j of the merged schedule is due, in ns since
// p.base, the index of the pair that sends it and its number in that pair.
// Every pair sends one message per interval; their schedules are staggered
// evenly across one interval.
func (p *pacer) due(j int64) (t int64, k int, n int64) {
	np, iv := int64(len(p.pairs)), p.interval.Nanoseconds()
	n, k64 := j/np, j%np
	return n*iv + iv*k64/np, int(k64), n
}

// run sends until ctx ends or every pair has failed to send. A pair whose
// Send fails sends no more.
func (p *pacer) run(ctx context.Context) {
	// Never unlocked: the thread, whose timer slack the sleeper may have
	// changed, ends with the goroutine.
	runtime.LockOSThread()
	s := newSleeper()
	if p.senders > 0 {
		p.runSenders(ctx, s)
		return
	}
	buf := make([]byte, 0, p.r.o.Size+64)
	failed := make([]bool, len(p.pairs))
	for j, alive := int64(0), len(p.pairs); alive > 0; j++ {
		t, k, n := p.due(j)
		if failed[k] {
			continue
		}
		if !p.wait(ctx, s, t) {
			return
		}
		late := time.Duration(time.Since(p.base).Nanoseconds() - t)
		pr := p.pairs[k]
		buf = appendNumbered(buf[:0], n, t, p.r.o.Size)
		if err := pr.a.Send(Message{Type: TypeMessage, To: pr.bID, Payload: buf}); err != nil {
			p.r.failErr("send", err)
			failed[k] = true
			alive--
			continue
		}
		if p.inWindow(t) {
			p.sent.Add(1)
			p.lag.record(late)
		}
	}
}

// due is a message handed to a sender: the pair, its number and its time.
type dueSend struct {
	k    int
	n, t int64
}

// runSenders is run with p.senders goroutines sending: the pacer hands
// each message to one as it falls due, and a sender records how late its
// send began.
func (p *pacer) runSenders(ctx context.Context, s *sleeper) {
	jobs := make(chan dueSend)
	var wg sync.WaitGroup
	for range p.senders {
		wg.Go(func() {
			buf := make([]byte, 0, p.r.o.Size+64)
			for j := range jobs {
				late := time.Duration(time.Since(p.base).Nanoseconds() - j.t)
				pr := p.pairs[j.k]
				buf = appendNumbered(buf[:0], j.n, j.t, p.r.o.Size)
				if err := pr.a.Send(Message{Type: TypeMessage, To: pr.bID, Payload: buf}); err != nil {
					p.r.failErr("send", err)
					continue
				}
				if p.inWindow(j.t) {
					p.sent.Add(1)
					p.lag.record(late)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)
	for j := int64(0); ; j++ {
		t, k, n := p.due(j)
		if !p.wait(ctx, s, t) {
			return
		}
		select {
		case jobs <- dueSend{k, n, t}:
		case <-ctx.Done():
			return
		}
	}
}

// wait sleeps until t ns after p.base. It reports false if ctx ended first.
func (p *pacer) wait(ctx context.Context, s *sleeper, t int64) bool {
	due := p.base.Add(time.Duration(t))
	for {
		if ctx.Err() != nil {
			return false
		}
		now := time.Now()
		d := due.Sub(now)
		if d <= 0 {
			return true
		}
		if d > maxPacerSleep {
			s.sleepUntil(now.Add(maxPacerSleep))
		} else {
			s.sleepUntil(due)
		}
	}
}
