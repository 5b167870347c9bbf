package loadgen

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// connectRetryWait is how long a connect worker pauses after a failed dial,
// so that a refusing server is not spun against.
const connectRetryWait = 10 * time.Millisecond

// connect runs the connect workload: o.Concurrency workers each join a room
// of their own with a fresh peer id, wait for the welcome, and leave, over
// and over. Cycles that end in the measurement window count; connect_ms is
// the time from dialing to being admitted.
func (r *run) connect(ctx context.Context) (*Result, error) {
	w := r.newWindow()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var hist histogram
	var cycles atomic.Int64
	var wg sync.WaitGroup
	for k := range r.o.Concurrency {
		room := r.room(k)
		wg.Go(func() {
			for n := 0; runCtx.Err() == nil; n++ {
				start := time.Now()
				c, err := r.d.Dial(runCtx, room, room+"-"+strconv.Itoa(n))
				if err != nil {
					if runCtx.Err() == nil {
						r.failErr("dial", err)
						time.Sleep(connectRetryWait)
					}
					continue
				}
				admitted := time.Since(start)
				c.Close()
				if w.contains(time.Now()) {
					cycles.Add(1)
					hist.record(admitted)
				}
			}
		})
	}
	measured, _ := w.wait(ctx)
	r.stopping.Store(true)
	stop()
	wg.Wait()

	res := r.result(measured)
	res.ConnectResult = &ConnectResult{
		Concurrency:  r.o.Concurrency,
		Cycles:       cycles.Load(),
		CyclesPerSec: float64(cycles.Load()) / measured.seconds(),
		ConnectTime:  hist.stats(),
	}
	return res, nil
}
