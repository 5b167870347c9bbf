package loadgen

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// latency runs the latency workload: o.Rate messages per second in total,
// spread evenly over the pairs and over time, from a to b. Each carries the
// time it was due to be sent, and b records how long after that it arrived:
// a sender that falls behind shows as latency instead of silently sending
// less (no coordinated omission). Only messages due in the measurement
// window count.
func (r *run) latency(ctx context.Context) (*Result, error) {
	pairs, err := r.dialPairs(ctx)
	if err != nil {
		return nil, err
	}
	var (
		base     = time.Now() // the clock of payload times, monotonic
		w        = r.newWindow()
		interval = time.Duration(float64(len(pairs)) / r.o.Rate * float64(time.Second))
		hist     histogram
		sent     atomic.Int64 // due in the window and sent
		got      atomic.Int64 // due in the window and received
		from     = w.from.Sub(base).Nanoseconds()
		to       = w.to.Sub(base).Nanoseconds()
		inWindow = func(t int64) bool { return t >= from && t < to }
	)
	interval = max(interval, time.Microsecond)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var senders, receivers sync.WaitGroup
	for k, p := range pairs {
		// Stagger the pairs' schedules across one interval.
		first := base.Add(interval * time.Duration(k) / time.Duration(len(pairs)))
		senders.Go(func() {
			buf := make([]byte, 0, r.o.Size+64)
			timer := time.NewTimer(0)
			defer timer.Stop()
			<-timer.C
			for n, due := int64(0), first; ; n, due = n+1, due.Add(interval) {
				if d := time.Until(due); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-sendCtx.Done():
						return
					}
				} else if sendCtx.Err() != nil {
					return
				}
				t := due.Sub(base).Nanoseconds()
				buf = appendNumbered(buf[:0], n, t, r.o.Size)
				if err := p.a.Send(Message{Type: TypeMessage, To: p.bID, Payload: buf}); err != nil {
					r.failErr("send", err)
					return
				}
				if inWindow(t) {
					sent.Add(1)
				}
			}
		})
		receivers.Go(func() { r.drain(p.a) })
		receivers.Go(func() {
			var want int64
			for {
				m, err := p.b.Recv()
				if err != nil {
					r.failErr("recv", err)
					return
				}
				if m.Type == TypeError {
					r.serverError(m)
					continue
				}
				var n numbered
				if json.Unmarshal(m.Payload, &n) != nil {
					r.fail("payload")
					continue
				}
				if n.N != want {
					r.fail("order")
				}
				want = n.N + 1
				if inWindow(n.T) {
					hist.record(time.Duration(time.Since(base).Nanoseconds() - n.T))
					got.Add(1)
				}
			}
		})
	}
	measured, completed := w.wait(ctx)
	// Messages due before the window closed are sent by now or about to
	// be; stop the senders and give those in flight time to arrive.
	stopSending()
	senders.Wait()
	if completed {
		deadline := time.Now().Add(drainWait)
		for got.Load() < sent.Load() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		r.failN("lost", sent.Load()-got.Load())
	}
	r.closePairs(pairs)
	receivers.Wait()

	res := r.result(measured)
	res.Pairs, res.Size = len(pairs), r.o.Size
	res.LatencyResult = &LatencyResult{Rate: r.o.Rate, Sent: sent.Load(), Latency: hist.stats()}
	return res, nil
}
