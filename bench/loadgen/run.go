package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// drainWait bounds how long a workload waits, after its window, for
// messages still in flight before it disconnects.
const drainWait = 2 * time.Second

// run is one execution of a workload: its options, driver, names and error
// counts.
type run struct {
	o     Options
	d     Driver
	peerD Driver // dials the second peer of each pair
	id    string // prefix of every room and peer id, unique to the run

	stopping atomic.Bool // set once teardown starts: failures are expected

	mu    sync.Mutex
	errs  map[string]int64
	first error // the first failure with an error, for the report
}

func newRun(o Options, d Driver) *run {
	var b [3]byte
	rand.Read(b[:])
	return &run{o: o, d: d, peerD: d, id: "lg" + hex.EncodeToString(b[:]), errs: make(map[string]int64)}
}

// fail counts a failure of the given kind, unless teardown has started.
func (r *run) fail(kind string) { r.failErr(kind, nil) }

// failN counts n failures of the given kind, unless teardown has started.
func (r *run) failN(kind string, n int64) {
	if n <= 0 || r.stopping.Load() {
		return
	}
	r.mu.Lock()
	r.errs[kind] += n
	r.mu.Unlock()
}

// failErr counts a failure of the given kind, and keeps err if it is the
// first, unless teardown has started.
func (r *run) failErr(kind string, err error) {
	if r.stopping.Load() {
		return
	}
	r.mu.Lock()
	r.errs[kind]++
	if r.first == nil && err != nil {
		r.first = err
	}
	r.mu.Unlock()
}

// serverError counts an error message from the server.
func (r *run) serverError(m Message) {
	r.fail("server: " + errorText(m.Payload))
}

// result returns a Result with the common fields filled in.
func (r *run) result(w window) *Result {
	res := &Result{
		Workload:  r.o.Workload,
		Protocol:  r.o.Protocol,
		Transport: r.o.Transport,
		URL:       r.o.URL,
		Seconds:   w.to.Sub(w.from).Seconds(),
		Warmup:    r.o.Warmup.Seconds(),
	}
	if r.o.Protocol != ProtocolSwitchboard {
		res.Transport = TransportWebSocket
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.errs {
		res.Errors += n
		if res.ErrorKinds == nil {
			res.ErrorKinds = make(map[string]int64)
		}
		res.ErrorKinds[k] = n
	}
	if r.first != nil {
		res.FirstError = r.first.Error()
	}
	return res
}

// room names the run's room i.
func (r *run) room(i int) string { return fmt.Sprintf("%s-%d", r.id, i) }

// peer names the run's peer i, with side ("a", "b" or "") appended. Peer
// ids are unique to the run even across rooms, for protocols without rooms.
func (r *run) peer(i int, side string) string { return fmt.Sprintf("%s-%d%s", r.id, i, side) }

// window is a measurement window: what happens in [from, to) counts, and
// once a run is cut short (see wait), nothing from the cut on.
type window struct {
	from, to time.Time
	// cut is set by wait when ctx ends the window early; copies of the
	// window share it, so the workers reading theirs stop counting then.
	cut *atomic.Pointer[time.Time]
}

// newWindow returns the window that opens after the warm-up from now.
func (r *run) newWindow() window {
	from := time.Now().Add(r.o.Warmup)
	return window{from: from, to: from.Add(r.o.Duration), cut: new(atomic.Pointer[time.Time])}
}

func (w window) contains(t time.Time) bool {
	if w.cut != nil {
		if c := w.cut.Load(); c != nil && !t.Before(*c) {
			return false
		}
	}
	return !t.Before(w.from) && t.Before(w.to)
}

// wait blocks until the window closes or ctx ends. It returns the window as
// measured, which a run cut short by ctx ends early, and whether it closed
// as planned. A window cut short contains nothing from the cut on, so that
// what arrives while the run winds down is not counted against the shorter
// measured window.
func (w window) wait(ctx context.Context) (window, bool) {
	t := time.NewTimer(time.Until(w.to))
	defer t.Stop()
	select {
	case <-t.C:
		return w, true
	case <-ctx.Done():
		if now := time.Now(); now.Before(w.to) {
			if w.cut != nil {
				w.cut.Store(&now)
			}
			w.to = now
			if w.to.Before(w.from) {
				w.from = w.to
			}
		}
		return w, false
	}
}

// seconds returns the window's length, never zero.
func (w window) seconds() float64 {
	return max(w.to.Sub(w.from).Seconds(), 1e-9)
}

// pair is two connected peers in one room: a calls b.
type pair struct {
	a, b     Conn
	aID, bID string
}

// close closes both peers.
func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}

// dialPairs connects o.Pairs pairs, o.Concurrency at a time. Pairs that
// fail are counted and left out; it fails only when none connects.
func (r *run) dialPairs(ctx context.Context) ([]*pair, error) {
	pairs := make([]*pair, r.o.Pairs)
	var firstErr error
	var mu sync.Mutex
	r.parallel(ctx, r.o.Pairs, func(i int) {
		p := &pair{aID: r.peer(i, "a"), bID: r.peer(i, "b")}
		var err error
		if p.b, err = r.peerD.Dial(ctx, r.room(i), p.bID); err == nil {
			if p.a, err = r.d.Dial(ctx, r.room(i), p.aID); err != nil {
				p.b.Close()
			}
		}
		if err != nil {
			r.failErr("dial", err)
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		pairs[i] = p
	})
	var ok []*pair
	for _, p := range pairs {
		if p != nil {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return nil, fmt.Errorf("loadgen: no pair connected: %w", firstErr)
	}
	return ok, nil
}

// parallel calls f(0) … f(n-1), o.Concurrency at a time, and returns when
// all have returned; once ctx ends it starts no more.
func (r *run) parallel(ctx context.Context, n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.o.Concurrency, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// drain reads c until it ends, for a peer that expects nothing: it answers
// the server's keep-alives and acknowledges, and counts what arrives.
func (r *run) drain(c Conn) {
	for {
		m, err := c.Recv()
		if err != nil {
			r.failErr("recv", err)
			return
		}
		if m.Type == TypeError {
			r.serverError(m)
		} else {
			r.fail("unexpected")
		}
	}
}

// closePairs starts teardown and closes every pair, o.Concurrency at a time.
func (r *run) closePairs(pairs []*pair) {
	r.stopping.Store(true)
	r.parallel(context.Background(), len(pairs), func(i int) { pairs[i].close() })
}
