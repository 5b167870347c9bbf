// This file owns the way into a session's mailbox: enqueue gives a frame
// the session's next seq in the Store (store.go), keeps a copy in the
// session's tail and wakes the connection that reads it (session_read.go);
// frames without a seq (pong) wait beside the mailbox, within its bound.
// Refuse tells a peer of a refusal the same way, as an error in its stream.

package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// enqueue gives f the session's next seq. It returns ErrSessionClosed when the
// session has ended; when the session stopped taking its messages, it ends it
// with slow-consumer, in the background, since the caller may hold room locks.
func (s *Session) enqueue(f frame) error {
	s.mu.Lock()
	if s.closed || s.wordDue {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	max, maxBytes := s.boundLocked()
	s.mu.Unlock()
	return s.store(f, max, maxBytes)
}

// boundLocked is the bound of the session's mailbox in the store: the
// mailbox's, less what waits on this node beside it (the seqless frames).
func (s *Session) boundLocked() (msgs, bytes int) {
	o := &s.b.opts
	return max(o.MailboxMessages-len(s.direct), 1), max(o.MailboxBytes-s.directBytes, 1)
}

// store puts f in the session's mailbox, within max messages and maxBytes
// bytes (max 0: no bound), and tells the session of it.
func (s *Session) store(f frame, max, maxBytes int) error {
	now := time.Now()
	ctx := s.b.opCtx()
	seq, slow, err := s.push(ctx, f, max, maxBytes)
	if errors.Is(err, ErrNoSession) && !s.Closed() {
		// The store lost the session (restarted empty): put it back, and
		// count what it lost as forgotten.
		s.logger().Warn("the store lost this session; restoring it", "last_seq", s.LastSeq())
		if err = s.b.store.Save(ctx, s.record(s.b.opts.NodeID, s.LastSeq()), s.b.storeTTL()); err == nil {
			seq, slow, err = s.push(ctx, f, max, maxBytes)
		}
	}
	if err != nil {
		s.logger().Error("storing a message", "error", err)
		return err
	}
	s.storedAt(seq, slow, f, now)
	return nil
}

// stored tells the session that the store gave seq to f, and ends it when
// the store says it stopped taking its messages.
func (s *Session) stored(seq uint64, slow bool, f frame) { s.storedAt(seq, slow, f, time.Now()) }

// storedAt is stored for a message stored at now.
func (s *Session) storedAt(seq uint64, slow bool, f frame, now time.Time) {
	if s.heardFrameAt(seq, f, now) {
		// Stored after the move: the session's node must hear of it.
		s.b.wakeElsewhere(s, seq)
	}
	if slow {
		s.slow()
	}
}

// batch is the buffers of one deliver call, kept in batches.
type batch struct {
	ds []Delivery
	ns []notice
}

var batches = sync.Pool{New: func() any { return new(batch) }}

// deliver stores each notice's frame in its session's mailbox, in one
// Store call however many sessions they are for, and tells each session of
// its own; a session that has ended is passed over. The caller holds no
// room lock.
func (b *Broker) deliver(ns []notice) {
	if len(ns) == 1 {
		_ = ns[0].to.enqueue(ns[0].f)
		return
	}
	bt := batches.Get().(*batch)
	for _, n := range ns {
		s := n.to
		s.mu.Lock()
		if s.closed || s.wordDue {
			s.mu.Unlock()
			continue
		}
		max, maxBytes := s.boundLocked()
		s.mu.Unlock()
		bt.ds = append(bt.ds, Delivery{Session: s.id, Body: n.f.body, Max: max, MaxBytes: maxBytes})
		bt.ns = append(bt.ns, n)
	}
	if len(bt.ds) > 0 {
		all := b.store.Push(b.opCtx(), bt.ds)
		for i, d := range bt.ds {
			n := bt.ns[i]
			switch {
			case d.Err == nil:
				n.to.stored(d.Seq, d.Slow, n.f)
			case all == nil:
				// One of its own: it puts back a session the store lost.
				_ = n.to.store(n.f, d.Max, d.MaxBytes)
			default:
				n.to.logger().Error("storing a message", "error", d.Err)
			}
		}
	}
	clear(bt.ds)
	clear(bt.ns)
	bt.ds, bt.ns = bt.ds[:0], bt.ns[:0]
	batches.Put(bt)
}

func (s *Session) push(ctx context.Context, f frame, max, maxBytes int) (seq uint64, slow bool, err error) {
	return s.box.push(ctx, f.body, max, maxBytes)
}

// heardFrame notes that the store gave seq to f, keeping a copy in the
// tail, and wakes the session's connection. It reports whether another node
// has taken the session over by then.
func (s *Session) heardFrame(seq uint64, f frame) (moved bool) {
	return s.heardFrameAt(seq, f, time.Now())
}

// heardFrameAt is heardFrame for a message stored at now.
func (s *Session) heardFrameAt(seq uint64, f frame, now time.Time) (moved bool) {
	s.mu.Lock()
	keep := true
	live := s.tail.live()
	switch n := len(live); {
	case n > 0 && seq == live[n-1].seq+1:
	case n == 0 || seq > live[n-1].seq+1:
		s.trimTailLocked(n) // a gap: messages stored by other nodes
	default:
		keep = false // older than the tail's last: heard of already
	}
	if keep {
		s.tail.push(entry{seq: seq, data: f.withSeq(seq), at: int64(now.Sub(epoch))})
		if !s.closed {
			s.b.m.queued(1)
		}
		o := &s.b.opts
		live, i, bytes := s.tail.live(), 0, s.tail.bytes
		for len(live)-i > o.MailboxMessages || (bytes > o.MailboxBytes && len(live)-i > 1) {
			bytes -= len(live[i].data)
			i++
		}
		s.trimTailLocked(i)
	}
	s.heardLocked(seq)
	moved = s.moved
	s.mu.Unlock()
	return moved
}

// heard notes that the store gave seq to a message for the session, and
// wakes its connection.
func (s *Session) heard(seq uint64) {
	s.mu.Lock()
	s.heardLocked(seq)
	s.mu.Unlock()
}

func (s *Session) heardLocked(seq uint64) {
	if seq > s.last {
		s.last = seq
	}
	s.wakeLocked()
}

// trimTailLocked drops the tail's first n entries.
func (s *Session) trimTailLocked(n int) {
	if n == 0 {
		return
	}
	if !s.closed {
		s.b.m.queued(-n)
	}
	s.tail.drop(n)
}

// tail is a session's copy of the latest messages heard of, seqs
// contiguous: es[head:] are live, the rest awaits compaction, which is done
// in place now and then, so that a steady flow allocates nothing. An
// emptied tail keeps an array of up to maxKeptTail entries, so that a busy
// session does not grow one again each time its peer has caught up, and
// lets a larger one go. A session that only ever had its welcome keeps one
// entry.
type tail struct {
	es    []entry
	head  int
	bytes int // of the live entries' data
}

func (t *tail) live() []entry { return t.es[t.head:] }

// maxKeptTail is the largest array an emptied tail keeps, in entries.
const maxKeptTail = 128

func (t *tail) push(e entry) {
	if t.head > 0 && len(t.es) == cap(t.es) && t.head*2 >= len(t.es) {
		n := copy(t.es, t.es[t.head:])
		clear(t.es[n:])
		t.es, t.head = t.es[:n], 0
	}
	t.es = append(t.es, e)
	t.bytes += len(e.data)
}

// drop forgets the first n live entries.
func (t *tail) drop(n int) {
	for _, e := range t.es[t.head : t.head+n] {
		t.bytes -= len(e.data)
	}
	clear(t.es[t.head : t.head+n])
	t.head += n
	if t.head < len(t.es) {
		return
	}
	t.head, t.bytes = 0, 0
	if cap(t.es) <= maxKeptTail {
		t.es = t.es[:0] // cleared above
	} else {
		t.es = nil
	}
}

// wakeLocked wakes whoever waits on Pending.
func (s *Session) wakeLocked() {
	s.wakes++
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	if fn := s.ready; fn != nil {
		s.ready = nil
		fn()
	}
}

// slow ends the session with slow-consumer, in the background, since the
// caller may hold room locks.
func (s *Session) slow() {
	o := &s.b.opts
	s.b.spawn(func() {
		s.end(Errorf(CodeSlowConsumer, "the session stopped taking its messages: more than %d messages or %d bytes waited", o.MailboxMessages, o.MailboxBytes), ReasonTimeout)
	})
}

// sendDirect queues a frame that carries no seq. It counts against the
// mailbox's bound like any other: a session that lets such frames pile up
// while its messages wait unwritten is ended with slow-consumer.
func (s *Session) sendDirect(data []byte) {
	s.mu.Lock()
	if s.closed || s.wordDue {
		s.mu.Unlock()
		return
	}
	s.direct = append(s.direct, data)
	s.directBytes += len(data)
	o := &s.b.opts
	n := len(s.direct) + int(s.last-min(s.handed, s.last))
	over := n > o.MailboxMessages || (s.directBytes > o.MailboxBytes && n > 1)
	s.wakeLocked()
	s.mu.Unlock()
	if over {
		s.slow()
	}
}

// entry is one message in a session's tail.
type entry struct {
	seq  uint64
	data []byte // the envelope's JSON, seq included
	at   int64  // when it was stored, in ns since epoch (for the delivery latency)
}

// epoch is what entry.at counts from, on the monotonic clock.
var epoch = time.Now()

// Refuse tells the peer that something it sent was refused, as an error
// envelope in its stream, and logs it. typ is the refused envelope's type, if known.
func (s *Session) Refuse(typ string, err error) {
	e := AsError(err)
	s.b.m.refused(typ, e.Code)
	level := slog.LevelInfo
	if e.Code == CodeInternal {
		level = slog.LevelError
	}
	// What a client can make the broker log is bounded: a line per
	// refusalLogEvery, which counts those held back; the metric counts all.
	s.mu.Lock()
	c := s.coldLocked()
	ok, held := throttle(&c.refusalNext, &c.refusalHeld, refusalLogEvery, time.Now())
	s.mu.Unlock()
	if ok || s.b.log.Enabled(context.Background(), slog.LevelDebug) {
		logThrottled(s.logger(), ok, held, level, "envelope refused", "type", typ, "code", e.Code, "error", err)
	}
	if err := s.enqueue(newFrame(errorEnvelope(e))); err != nil && !errors.Is(err, ErrSessionClosed) {
		// The mailbox cannot take it (the store is down): tell the peer on
		// its live connection, without a seq, rather than not at all.
		s.sendDirect(ErrorFrame(e))
	}
}
