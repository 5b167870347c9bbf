package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// idle runs the idle workload: it reads the server's resident memory, opens
// o.Conns sessions, o.RoomSize to a room, o.Concurrency at a time, lets the
// server settle for o.Warmup and reads its memory again. Every session has a
// receiver, so it answers the server's keep-alives and acknowledges what it
// gets, as a real idle client does. With o.SampleRate set, it then sends
// messages to randomly chosen held peers for o.Duration (see sample).
func (r *run) idle(ctx context.Context) (*Result, error) {
	if r.o.SampleRate > 0 && r.o.RoomSize < 2 {
		return nil, fmt.Errorf("loadgen: -sample-rate needs rooms of two or more (-room-size)")
	}
	rss, err := newRSSReader(r.o)
	if err != nil {
		return nil, err
	}
	// Memory that cannot be read is reported, not counted as an error of
	// the server's: a bare relay has no /metrics.
	source, rssErr := rss.source(), ""
	before, err := rss.read(ctx)
	if err != nil {
		source, rssErr = "none", err.Error()
	}

	conns := make([]Conn, r.o.Conns)
	var dropped atomic.Int64
	var receivers sync.WaitGroup
	var smp atomic.Pointer[sampling] // set while messages are sampled
	start := time.Now()
	r.parallel(ctx, r.o.Conns, func(i int) {
		c, err := r.d.Dial(ctx, r.room(i/r.o.RoomSize), r.peer(i, ""))
		if err != nil {
			r.failErr("dial", err)
			return
		}
		conns[i] = c
		receivers.Go(func() {
			for {
				m, err := c.Recv()
				if err != nil {
					if !r.stopping.Load() {
						dropped.Add(1)
						r.failErr("recv", err)
					}
					return
				}
				switch s := smp.Load(); {
				case m.Type == TypeError:
					r.serverError(m)
				case s != nil:
					s.arrived(r, m)
				default:
					r.fail("unexpected")
				}
			}
		})
	})
	connectTime := time.Since(start)
	connected := 0
	for _, c := range conns {
		if c != nil {
			connected++
		}
	}

	settled, _ := window{from: time.Now(), to: time.Now().Add(r.o.Warmup)}.wait(ctx)
	var after int64
	if source != "none" {
		if after, err = rss.read(ctx); err != nil {
			source, rssErr = "none", err.Error()
		}
	}
	measured := window{from: start, to: settled.to}
	var delivery *DeliveryResult
	if r.o.SampleRate > 0 && ctx.Err() == nil {
		delivery = r.sample(ctx, conns, &smp)
		measured.to = time.Now()
	}

	r.stopping.Store(true)
	r.parallel(context.Background(), len(conns), func(i int) {
		if conns[i] != nil {
			conns[i].Close()
		}
	})
	receivers.Wait()

	res := r.result(measured)
	res.IdleResult = &IdleResult{
		Conns:          r.o.Conns,
		Connected:      connected,
		Dropped:        dropped.Load(),
		ConnectSeconds: connectTime.Seconds(),
		ConnectsPerSec: float64(connected) / max(connectTime.Seconds(), 1e-9),
		RSSSource:      source,
		RSSError:       rssErr,
		Delivery:       delivery,
	}
	if source != "none" {
		res.RSSBefore, res.RSSAfter = before, after
		if connected > 0 {
			res.BytesPerConn = float64(after-before) / float64(connected)
		}
	}
	return res, nil
}

// sampleSenders is how many goroutines make the delivery sample's sends.
const sampleSenders = 32

// sampling is the state of idle's delivery sample, which the receivers
// read.
type sampling struct {
	base     time.Time // the clock of payload times, monotonic
	inWindow func(t int64) bool
	hist     histogram
	got      atomic.Int64 // due in the window and received
}

// arrived records a sampled message: its latency, when it was due in the
// window.
func (s *sampling) arrived(r *run, m Message) {
	n, err := parseNumbered(m.Payload)
	if err != nil {
		r.fail("payload")
		return
	}
	if s.inWindow(n.T) {
		s.hist.record(time.Duration(time.Since(s.base).Nanoseconds() - n.T))
		s.got.Add(1)
	}
}

// sample sends o.SampleRate messages a second for o.Duration, each from a
// peer to another of its room, the rooms taken in a random order and
// either peer of a room the receiver, and measures their delivery as the
// latency workload does: from when each was due to its arrival. The
// receivers of conns hand the messages to smp.
func (r *run) sample(ctx context.Context, conns []Conn, smp *atomic.Pointer[sampling]) *DeliveryResult {
	var pairs []*pair
	for k := 0; k*r.o.RoomSize+1 < len(conns); k++ {
		i, j := k*r.o.RoomSize, k*r.o.RoomSize+1
		if rand.IntN(2) == 0 {
			i, j = j, i
		}
		if conns[i] != nil && conns[j] != nil {
			pairs = append(pairs, &pair{a: conns[i], b: conns[j], aID: r.peer(i, ""), bID: r.peer(j, "")})
		}
	}
	if len(pairs) == 0 {
		r.fail("sample: no room with two peers connected")
		return nil
	}
	rand.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	base := time.Now()
	to := r.o.Duration.Nanoseconds()
	s := &sampling{base: base, inWindow: func(t int64) bool { return t >= 0 && t < to }}
	smp.Store(s)
	interval := time.Duration(float64(len(pairs)) / r.o.SampleRate * float64(time.Second))
	// Each pair sends once or twice in the window: a pool of senders keeps
	// one slow send (a POST that dials) from delaying the others.
	p := &pacer{r: r, pairs: pairs, base: base, interval: max(interval, time.Microsecond), inWindow: s.inWindow, senders: sampleSenders}
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var sender sync.WaitGroup
	sender.Go(func() { p.run(sendCtx) })
	w := window{from: base, to: base.Add(r.o.Duration), cut: new(atomic.Pointer[time.Time])}
	_, completed := w.wait(ctx)
	stopSending()
	sender.Wait()
	if completed {
		deadline := time.Now().Add(drainWait)
		for s.got.Load() < p.sent.Load() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		r.failN("lost", p.sent.Load()-s.got.Load())
	}
	return &DeliveryResult{Rate: r.o.SampleRate, Sent: p.sent.Load(), Latency: s.hist.stats(), SendLag: p.lag.stats()}
}
