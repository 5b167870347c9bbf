// Package writer holds what the transports that write a session's messages
// from a goroutine of their own, gated by the peer's acknowledgements, share
// (email and Redis): the acknowledged seq, and the generations of the writer
// goroutine that a resume replaces. The write loops stay in the transports:
// what a window is, and how a message goes out, differ between them.
package writer

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Acks is the highest seq a peer has acknowledged, and a signal for the
// writer when an acknowledgement comes. Make it with NewAcks; it is safe for
// concurrent use.
type Acks struct {
	seq  atomic.Uint64
	wake chan struct{}
}

// NewAcks returns Acks at seq 0.
func NewAcks() *Acks { return &Acks{wake: make(chan struct{}, 1)} }

// Note records that the peer has everything up to seq (a lower seq than the
// one recorded changes nothing) and signals Wake.
func (a *Acks) Note(seq uint64) {
	for {
		cur := a.seq.Load()
		if seq <= cur || a.seq.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Seq is the highest seq acknowledged.
func (a *Acks) Seq() uint64 { return a.seq.Load() }

// Wake receives a value after Note; several Notes may come as one.
func (a *Acks) Wake() <-chan struct{} { return a.wake }

// Gen is one generation of a peer's writer goroutine, tied to one
// attachment of the session. Its methods are safe for concurrent use.
type Gen struct {
	// Att is the generation's attachment, detached when the goroutine ends.
	Att  *broker.Attachment
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// Start attaches to s and runs write with the new generation in a goroutine
// of its own. When write reports the session over for this transport (ended,
// timed out, or carried elsewhere), or panics, leave is called; a panic is
// logged, with what (the transport's name) in the message, and ends only
// this goroutine. The caller stops the generation with Stop.
func Start(s *broker.Session, log *slog.Logger, what string, write func(*Gen) (over bool), leave func()) *Gen {
	g := &Gen{Att: s.Attach(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		defer g.Att.Detach()
		defer func() {
			if r := recover(); r != nil {
				log.Error(what+" writer panicked", "panic", r)
				leave()
			}
		}()
		if write(g) {
			leave()
		}
	}()
	return g
}

// Stop asks the goroutine to stop and waits until it has ended: nothing of
// this generation goes out after Stop returns. It may be called more than
// once.
func (g *Gen) Stop() {
	g.once.Do(func() { close(g.stop) })
	<-g.done
}

// Stopping is closed once Stop has been called: write returns when it is.
func (g *Gen) Stopping() <-chan struct{} { return g.stop }

// Stopped reports whether Stop has been called.
func (g *Gen) Stopped() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}
