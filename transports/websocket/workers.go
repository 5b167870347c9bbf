package websocket

import "time"

// workerIdle is how long a worker waits for another task before it ends.
const workerIdle = 2 * time.Second

// workers runs connections' reads and flushes on goroutines that outlive
// one task: a goroutine started afresh for each would grow its stack anew
// every time, as handling an envelope goes deep. A task goes to a worker
// waiting for one, else to a new worker; workers idle for workerIdle end,
// so an idle transport keeps none.
type workers struct {
	tasks chan task // unbuffered: a send succeeds only to a waiting worker
}

// task is a connection's read (p set), keep-alive check (tick) or flush.
type task struct {
	c    *conn
	p    *poller
	tick bool
}

func newWorkers() *workers { return &workers{tasks: make(chan task)} }

// submit runs t on a worker.
func (w *workers) submit(t task) {
	select {
	case w.tasks <- t:
	default:
		go w.work(t)
	}
}

func (w *workers) work(t task) {
	timer := time.NewTimer(workerIdle)
	defer timer.Stop()
	for {
		t.run()
		timer.Reset(workerIdle)
		select {
		case t = <-w.tasks:
		case <-timer.C:
			return
		}
	}
}

func (t task) run() {
	switch {
	case t.p != nil:
		t.c.readable(t.p)
	case t.tick:
		t.c.tick()
	default:
		t.c.flush()
	}
}
