package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// idle runs the idle workload: it reads the server's resident memory, opens
// o.Conns sessions, o.RoomSize to a room, o.Concurrency at a time, lets the
// server settle for o.Warmup and reads its memory again. Every session has a
// receiver, so it answers the server's keep-alives and acknowledges what it
// gets, as a real idle client does.
func (r *run) idle(ctx context.Context) (*Result, error) {
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
				if m.Type == TypeError {
					r.serverError(m)
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

	r.stopping.Store(true)
	r.parallel(context.Background(), len(conns), func(i int) {
		if conns[i] != nil {
			conns[i].Close()
		}
	})
	receivers.Wait()

	res := r.result(window{from: start, to: settled.to})
	res.IdleResult = &IdleResult{
		Conns:          r.o.Conns,
		Connected:      connected,
		Dropped:        dropped.Load(),
		ConnectSeconds: connectTime.Seconds(),
		ConnectsPerSec: float64(connected) / max(connectTime.Seconds(), 1e-9),
		RSSSource:      source,
		RSSError:       rssErr,
	}
	if source != "none" {
		res.RSSBefore, res.RSSAfter = before, after
		if connected > 0 {
			res.BytesPerConn = float64(after-before) / float64(connected)
		}
	}
	return res, nil
}
