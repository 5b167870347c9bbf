package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Store keeps sessions and their mailboxes where every node of a cluster
// reaches them, so that a session outlives the node it started on: it can
// resume on another node after its node died, and a long-poll request may
// land on any node. The store is then the mailbox: it gives each message
// its seq, and every node delivers into it. Implementations are safe for
// concurrent use; the Redis one lives in transports/redis. A broker without
// a Store keeps its mailboxes in memory.
type Store interface {
	// Save records a session, new or adopted by another node, for ttl; one
	// the store does not have starts counting at rec.Last.
	Save(ctx context.Context, rec SessionRecord, ttl time.Duration) error
	// Load returns a session's record; ErrNoSession when there is none.
	Load(ctx context.Context, id string) (SessionRecord, error)
	// Push appends a message to a session's mailbox as its next seq: the
	// stored frame is `{"seq":N,` followed by body. With max > 0, messages
	// written but not acknowledged are forgotten, oldest first, beyond max
	// messages; slow reports that more than max wait unwritten (the message
	// is kept all the same).
	Push(ctx context.Context, id, typ string, body []byte, max int) (seq uint64, slow bool, err error)
	// Take returns up to n frames with seq > after, marking them written,
	// and the last seq it returns (after when none). It fails with an
	// *Error of CodeSessionExpired when after reaches back past what was
	// forgotten.
	Take(ctx context.Context, id string, after uint64, n int) (frames [][]byte, last uint64, err error)
	// Ack forgets the messages up to seq; ok is false when seq was never sent.
	Ack(ctx context.Context, id string, seq uint64) (ok bool, err error)
	// Seqs returns the last seq given and the last one forgotten unacknowledged.
	Seqs(ctx context.Context, id string) (last, dropped uint64, err error)
	// Touch keeps sessions for another ttl.
	Touch(ctx context.Context, ids []string, ttl time.Duration) error
	// Delete forgets a session.
	Delete(ctx context.Context, id string) error
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

// storeTTL is how long a store keeps a session that no node touches: past
// every resume window and idle timeout, so that only dead sessions lapse.
func (b *Broker) storeTTL() time.Duration { return 2*b.opts.ResumeWindow + 2*time.Minute }

// touchLoop keeps this node's sessions alive in the store.
func (b *Broker) touchLoop(stop <-chan struct{}) {
	every := b.storeTTL() / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.mu.RLock()
		ids := make([]string, 0, len(b.sessions))
		for id, s := range b.sessions {
			if !s.Closed() {
				ids = append(ids, id)
			}
		}
		b.mu.RUnlock()
		ctx, cancel := context.WithTimeout(context.Background(), storeOp)
		if err := b.opts.Store.Touch(ctx, ids, b.storeTTL()); err != nil {
			b.log.Error("keeping sessions in the store", "error", err)
		}
		cancel()
	}
}
