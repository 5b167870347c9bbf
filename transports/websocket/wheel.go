package websocket

import (
	"sync"
	"time"
)

// wheel runs every connection's keep-alive check (conn.tick) on time, with
// one timer for the transport rather than one per connection: a slot per
// res of time ahead, each the list of connections due then. A connection
// costs a pointer in one slot instead of a runtime timer (about 110 bytes
// more, and a timer heap that every connection's reset reorders). Checks
// run on the transport's workers, late by at most res; a connection that
// ended is dropped from its slot when the slot comes up.
type wheel struct {
	res  time.Duration
	work *workers

	mu      sync.Mutex
	slots   [][]*conn
	cur     int  // the slot that comes up next
	running bool // the ticking goroutine runs
	stopped bool
	stop    chan struct{}
}

// newWheel returns a wheel for checks at most span apart, each on time
// within span/16 (but at most a second, at least a millisecond).
func newWheel(span time.Duration, work *workers) *wheel {
	res := min(max(span/16, time.Millisecond), time.Second)
	n := int(span/res) + 2
	return &wheel{res: res, work: work, slots: make([][]*conn, n), stop: make(chan struct{})}
}

// schedule runs c.tick on a worker after about d; beyond the wheel's span,
// at its end, and tick schedules itself again. It is a no-op once the
// wheel has stopped.
func (w *wheel) schedule(c *conn, d time.Duration) {
	k := min(max(int((d+w.res-1)/w.res), 1), len(w.slots)-1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	i := (w.cur + k - 1) % len(w.slots)
	w.slots[i] = append(w.slots[i], c)
	if !w.running {
		w.running = true
		go w.run()
	}
}

// run turns the wheel every res until it is stopped or empty.
func (w *wheel) run() {
	t := time.NewTicker(w.res)
	defer t.Stop()
	var due []*conn
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		due, w.slots[w.cur] = w.slots[w.cur], due[:0]
		w.cur = (w.cur + 1) % len(w.slots)
		empty := len(due) == 0
		if empty {
			empty = true
			for _, s := range w.slots {
				if len(s) > 0 {
					empty = false
					break
				}
			}
			if empty {
				w.running = false
			}
		}
		w.mu.Unlock()
		if empty {
			return
		}
		for i, c := range due {
			if !c.ended.Load() {
				w.work.submit(task{c: c, tick: true})
			}
			due[i] = nil
		}
	}
}

// close stops the wheel; scheduled checks are dropped.
func (w *wheel) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.stop)
	}
}
