// This file owns the Store interface: where sessions and their mailboxes
// are kept, on one node (memorystore.go) or for a cluster (the Redis one).

package broker

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// Store keeps sessions and their mailboxes. Every broker has one: without
// Options.Store it makes a MemoryStore of its own, and in a cluster the
// nodes share one (the Redis one lives in cluster/redis), so that a
// session outlives the node it started on: it can resume on another node
// after its node died, and a long-poll request may land on any node. The
// store gives each message its seq, and every node delivers into it.
//
// A message is opaque to the store: it keeps the bytes it is given and
// hands them back as they are, with their seq beside them; the broker
// writes the seq into the wire frame itself.
//
// Every call gets a ctx with a deadline. Implementations are safe for
// concurrent use.
type Store interface {
	// Save records a session, new or adopted by another node, for ttl; one
	// the store does not have starts counting at rec.Last.
	Save(ctx context.Context, rec SessionRecord, ttl time.Duration) error
	// Load returns a session's record; ErrNoSession when there is none.
	Load(ctx context.Context, id string) (SessionRecord, error)
	// Push appends each delivery's Body to its session's mailbox as that
	// session's next seq, and sets its Seq and Slow, or its Err. One call
	// may hold deliveries for many sessions (a broadcast); deliveries to
	// one session get their seqs in the order given, and a call made after
	// another returned is stored after it. An implementation should send
	// one call in as few round trips as it can, and may coalesce
	// concurrent calls. The error returned is a failure of the whole call
	// (the store is out of reach), which is then every delivery's Err too.
	Push(ctx context.Context, ds []Delivery) error
	// Take appends to buf up to n messages with seq > after, oldest first,
	// marks them written, and returns buf. It fails with an *Error of
	// CodeSessionExpired when after reaches back past what was forgotten,
	// or when there is no such session.
	Take(ctx context.Context, id string, after uint64, n int, buf []Stored) ([]Stored, error)
	// Written marks the messages up to seq written to the session's
	// connection without reading them (the broker handed them out from
	// what it keeps itself): Push's bound may then forget them.
	Written(ctx context.Context, id string, seq uint64) error
	// Ack forgets the messages up to seq; ok is false when seq was never
	// given. ErrNoSession when there is no such session.
	Ack(ctx context.Context, id string, seq uint64) (ok bool, err error)
	// Seqs returns the last seq given and the last one forgotten
	// unacknowledged; ErrNoSession when there is no such session.
	Seqs(ctx context.Context, id string) (last, dropped uint64, err error)
	// Touch keeps sessions for another ttl.
	Touch(ctx context.Context, ids []string, ttl time.Duration) error
	// Delete forgets a session.
	Delete(ctx context.Context, id string) error
}

// Delivery is one message for Store.Push, and what became of it.
type Delivery struct {
	Session string // the receiving session's id (its secret)
	Body    []byte // the message; the store keeps these bytes as they are
	// Max bounds the mailbox: with Max > 0, messages written but not
	// acknowledged are forgotten, oldest first, while more than Max
	// messages, or more than MaxBytes bytes of Body with more than one
	// message, are kept; past that, what is left over is unwritten and
	// Slow is set (the message is kept all the same). MaxBytes 0 bounds
	// by count only, and so does a store that counts no bytes (the Redis
	// one: docs/protocol.md, section 4, "in a cluster, messages only").
	// Max 0: no bound (the last word to a session being ended).
	Max, MaxBytes int

	// Set by Push:
	Seq  uint64 // the seq the message got
	Slow bool   // more than the bound waits unwritten
	Err  error  // ErrNoSession when the store has no such session
}

// Stored is a message as Store.Take hands it back.
type Stored struct {
	Seq  uint64
	Body []byte
}

// SessionRecord is what a Store keeps of a session besides its mailbox.
type SessionRecord struct {
	ID   string          `json:"id"`
	Room string          `json:"room"`
	Peer string          `json:"peer"`
	Meta json.RawMessage `json:"meta,omitempty"`
	Node string          `json:"node"` // the node that serves it now
	// Transport is the transport that carries the session: its secret is
	// honoured on that transport only (a node taking a session over checks
	// it before it does). Empty in records written before it was kept.
	Transport string `json:"transport,omitempty"`
	// Last is the last seq the session had, for a store that lost it (a
	// Redis restarted without persistence): a session that is not in the
	// store is created with its counter at Last, and what came before is
	// counted as forgotten.
	Last uint64 `json:"-"`
}

// ErrNoSession is returned by Store.Load for a session it does not have.
var ErrNoSession = errors.New("broker: no such session")

// storeOp bounds one store call made on a peer's behalf.
const storeOp = 5 * time.Second

// sessionBox is a session's own way into its mailbox in the store, for
// what every message does (push, ack). A MemoryStore hands out its
// mailboxes themselves, so that a message is not looked up by session id
// on its way; any other store is reached through storeBox, which names the
// session in each call.
type sessionBox interface {
	push(ctx context.Context, body []byte, max, maxBytes int) (seq uint64, slow bool, err error)
	ack(ctx context.Context, seq uint64) (bool, error)
}

// boxOf returns session id's way into its mailbox in st. Only a
// MemoryStore itself hands out its mailboxes: a type that embeds one (to
// count or gate its calls, say) is called through the Store interface, so
// that what it overrides is not passed by.
func boxOf(st Store, id string) sessionBox {
	if m, ok := st.(*MemoryStore); ok {
		if box := m.box(id); box != nil {
			return box
		}
	}
	return &storeBox{st: st, id: id}
}

// storeBox is a sessionBox through the Store interface.
type storeBox struct {
	st Store
	id string
}

// oneDelivery holds the one-delivery batches of storeBox.push, so that
// handing a message to the store allocates nothing.
var oneDelivery = sync.Pool{New: func() any { return new([1]Delivery) }}

func (b *storeBox) push(ctx context.Context, body []byte, max, maxBytes int) (uint64, bool, error) {
	p := oneDelivery.Get().(*[1]Delivery)
	p[0] = Delivery{Session: b.id, Body: body, Max: max, MaxBytes: maxBytes}
	err := b.st.Push(ctx, p[:])
	d := p[0]
	p[0] = Delivery{}
	oneDelivery.Put(p)
	if err == nil {
		err = d.Err
	}
	return d.Seq, d.Slow, err
}

func (b *storeBox) ack(ctx context.Context, seq uint64) (bool, error) {
	return b.st.Ack(ctx, b.id, seq)
}
