package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// latency runs the latency workload: o.Rate messages per second in total,
// spread evenly over the pairs and over time, from a to b, all sent by one
// pacer in the order they are due. Each carries the time it was due to be
// sent, and b records how long after that it arrived: a sender that falls
// behind shows as latency instead of silently sending less (no coordinated
// omission). How late the pacer began each send is reported apart, as the
// load generator's own error. Only messages due in the measurement window
// count.
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
		got      atomic.Int64 // due in the window and received
		from     = w.from.Sub(base).Nanoseconds()
		to       = w.to.Sub(base).Nanoseconds()
		inWindow = func(t int64) bool { return t >= from && t < to }
	)
	p := &pacer{r: r, pairs: pairs, base: base, interval: max(interval, time.Microsecond), inWindow: inWindow}
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var sender, receivers sync.WaitGroup
	sender.Go(func() { p.run(sendCtx) })
	for _, pr := range pairs {
		receivers.Go(func() { r.drain(pr.a) })
		receivers.Go(func() {
			r.receiveNumbered(pr.b, nil, func(_ Message, n numbered) {
				if inWindow(n.T) {
					hist.record(time.Duration(time.Since(base).Nanoseconds() - n.T))
					got.Add(1)
				}
			})
		})
	}
	measured, completed := w.wait(ctx)
	// Messages due before the window closed are sent by now or about to
	// be; stop the pacer and give those in flight time to arrive.
	stopSending()
	sender.Wait()
	if completed {
		deadline := time.Now().Add(drainWait)
		for got.Load() < p.sent.Load() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		r.failN("lost", p.sent.Load()-got.Load())
	}
	r.closePairs(pairs)
	receivers.Wait()

	res := r.result(measured)
	res.Pairs, res.Size = len(pairs), r.o.Size
	res.LatencyResult = &LatencyResult{Rate: r.o.Rate, Sent: p.sent.Load(), Latency: hist.stats(), SendLag: p.lag.stats()}
	return res, nil
}
