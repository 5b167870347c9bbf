// This file owns the Broker's lifecycle: New, the lookups of sessions, Drain
// and Close, and the goroutines and store contexts the broker owns. An
// envelope's path through the core, in reading order: transport.go,
// join.go, session.go, session_in.go, route.go, hold.go, cluster.go (only
// when it crosses nodes), session_out.go, session_read.go
// (docs/architecture.md draws it).

package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Broker is the signaling core: rooms, sessions and routing. Transports hand
// it what peers send and take from it what peers receive. It is safe for
// concurrent use; create it with New and end it with Close.
type Broker struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	bp   Backplane
	// store holds every session's mailbox: Options.Store, or a MemoryStore
	// of this node's own; shared says it is Options.Store, which every
	// node of the cluster reaches (a session may then move between nodes,
	// and a message for a peer on another node goes into the store).
	store  Store
	shared bool

	// ctx ends when the broker closes; every store and backplane call is
	// made within it (see opCtx).
	ctx    context.Context
	cancel context.CancelFunc
	op     atomic.Pointer[opContext]
	opMu   sync.Mutex

	// tasks counts the goroutines the broker runs (spawn, and the timers
	// of afterFunc once they fire), which Close waits for; once stopped,
	// none starts.
	tasksMu   sync.Mutex
	tasksDone sync.Cond
	tasks     int
	stopped   bool

	mu       sync.RWMutex
	rooms    map[string]*room
	sessions map[string]*Session // by secret
	count    int                 // live sessions on this node

	// heldMsgs and heldBytes count the messages held on this node for
	// absent peers, against Options.HeldMessages and HeldBytes.
	heldMsgs  atomic.Int64
	heldBytes atomic.Int64

	joins *joinLimiter
	seed  maphash.Seed // for hashing envelope ids

	closing     atomic.Bool
	unsubscribe func()
	adoptMu     sync.Mutex // one take-over at a time
	closeOnce   sync.Once
}

// New returns a broker with opts; it subscribes to the backplane at once.
func New(opts Options) *Broker {
	opts.init()
	b := &Broker{
		opts:     opts,
		log:      opts.Logger,
		rooms:    make(map[string]*room),
		sessions: make(map[string]*Session),
		bp:       opts.Backplane,
		joins:    newJoinLimiter(opts.JoinRate, opts.JoinBurst),
		seed:     maphash.MakeSeed(),
	}
	if b.bp == nil {
		b.bp = &MemoryBackplane{}
	}
	b.store, b.shared = opts.Store, opts.Store != nil
	if b.store == nil {
		b.store = &MemoryStore{private: true}
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.tasksDone.L = &b.tasksMu
	b.m = newMetrics(opts.Registerer, b)
	b.unsubscribe = b.bp.Subscribe(opts.NodeID, b.remote)
	if b.shared {
		stop := make(chan struct{})
		b.spawn(func() { b.touchLoop(stop) })
		unsub := b.unsubscribe
		b.unsubscribe = func() { close(stop); unsub() }
	}
	if len(opts.TokenSecret) == 0 {
		b.log.Warn("NO TOKEN SECRET IS SET: anyone can join any room as any peer. Set token_secret (SWITCHBOARD_TOKEN_SECRET) in production.")
	}
	return b
}

// Options returns the broker's options, defaults applied.
func (b *Broker) Options() Options { return b.opts }

// Logger returns the broker's logger.
func (b *Broker) Logger() *slog.Logger { return b.log }

// Sessions returns the number of live sessions on this node.
func (b *Broker) Sessions() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.count
}

// Session finds a session by its secret: a live one, or one that ended
// lately (see Session.Closed), whose last messages may still be fetched.
//
// With a Store, a session that another node serves (or served, before it
// died) is taken over by this one.
func (b *Broker) Session(id string) (*Session, bool) {
	b.mu.RLock()
	s, ok := b.sessions[id]
	b.mu.RUnlock()
	if ok || !b.shared || b.closing.Load() {
		return s, ok
	}
	s, err := b.adopt(id)
	if err != nil {
		if !errors.Is(err, ErrNoSession) {
			b.log.Error("taking a session over from the store", "error", err)
		}
		return nil, false
	}
	return s, true
}

// LocalSession finds a session by its secret among those this node serves,
// live or ended lately, and never takes one over: for a transport that must
// tell whether this node or another carries a session.
func (b *Broker) LocalSession(id string) (*Session, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.sessions[id]
	return s, ok
}

// Drain stops admitting joins: from now on Join answers that the broker is
// shutting down. Sessions go on until Close.
func (b *Broker) Drain() { b.closing.Store(true) }

// Close stops admitting joins and ends every session on this node with
// reason; the others in their rooms see peer-left. With a shared Store the
// sessions are let go instead, to be resumed on another node. It returns
// once every goroutine the broker started has ended; timers it set that
// have not fired do nothing when they do.
func (b *Broker) Close(reason string) {
	b.closing.Store(true)
	b.mu.RLock()
	all := make([]*Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	rooms := make([]*room, 0, len(b.rooms))
	for _, r := range b.rooms {
		rooms = append(rooms, r)
	}
	b.mu.RUnlock()
	for _, s := range all {
		if b.shared {
			b.drop(s) // it may resume on another node
		} else {
			s.Close(reason)
		}
	}
	b.closeOnce.Do(b.unsubscribe)
	b.tasksMu.Lock()
	b.stopped = true
	for b.tasks > 0 {
		b.tasksDone.Wait()
	}
	b.tasksMu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		for _, q := range r.held {
			for _, h := range q {
				h.timer.Stop()
			}
		}
		r.mu.Unlock()
	}
	b.cancel()
}

// startTask counts a goroutine the broker runs, unless it has closed.
func (b *Broker) startTask() bool {
	b.tasksMu.Lock()
	defer b.tasksMu.Unlock()
	if b.stopped {
		return false
	}
	b.tasks++
	return true
}

func (b *Broker) endTask() {
	b.tasksMu.Lock()
	b.tasks--
	if b.tasks == 0 {
		b.tasksDone.Broadcast()
	}
	b.tasksMu.Unlock()
}

// spawn runs fn in a goroutine of its own, which Close waits for; once the
// broker has closed, it does not run fn.
func (b *Broker) spawn(fn func()) {
	if !b.startTask() {
		return
	}
	go func() {
		defer b.endTask()
		fn()
	}()
}

// afterFunc is time.AfterFunc for the broker's timers: fn runs as a task
// Close waits for, and not at all once the broker has closed.
func (b *Broker) afterFunc(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		if !b.startTask() {
			return
		}
		defer b.endTask()
		fn()
	})
}

// opContext is a context that many store and backplane calls share: its
// deadline is 2 storeOp from when it was made, and it goes stale after
// storeOp, so that every call it is handed to has at least storeOp.
type opContext struct {
	ctx    context.Context
	cancel context.CancelFunc // called by nobody: it lapses at its deadline, or with the broker's
	stale  atomic.Bool
}

// opCtx returns the context of one store or backplane call: it ends when
// the broker closes, and has a deadline storeOp to 2 storeOp from now.
// Calls made close together share one, so that a call allocates nothing
// for it nor reads the clock (slow on some machines); each lapses by
// itself at its deadline.
func (b *Broker) opCtx() context.Context {
	if c := b.op.Load(); c != nil && !c.stale.Load() {
		return c.ctx
	}
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if c := b.op.Load(); c != nil && !c.stale.Load() {
		return c.ctx
	}
	c := &opContext{}
	c.ctx, c.cancel = context.WithTimeout(b.ctx, 2*storeOp)
	b.op.Store(c)
	b.afterFunc(storeOp, func() { c.stale.Store(true) })
	return c.ctx
}

// randomID returns n random bytes, hex-encoded.
func randomID(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
