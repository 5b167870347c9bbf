package webrtcpeer

import "sync"

// eventQueue hands events to a callback one at a time, in order, from a
// goroutine of its own, so that a slow callback holds up nothing else.
type eventQueue struct {
	fn     func(Event)
	mu     sync.Mutex
	queue  []Event
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newEventQueue(fn func(Event)) *eventQueue {
	q := &eventQueue{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if q.closed || q.fn == nil {
		q.mu.Unlock()
		return
	}
	q.queue = append(q.queue, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close stops taking events; those queued are still handed on.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// wait waits until every queued event has been handed on after close.
func (q *eventQueue) wait() { <-q.done }

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		<-q.wake
		for {
			q.mu.Lock()
			if len(q.queue) == 0 {
				closed := q.closed
				q.mu.Unlock()
				if closed {
					return
				}
				break
			}
			ev := q.queue[0]
			q.queue = q.queue[1:]
			q.mu.Unlock()
			q.fn(ev)
		}
	}
}
