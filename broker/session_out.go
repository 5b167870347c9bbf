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
	o := s.b.opts
	return max(o.MailboxMessages-len(s.direct), 1), max(o.MailboxBytes-s.directBytes, 1)
}

// oneDelivery holds the one-delivery batches of store, so that handing a
// message to the store allocates nothing.
var oneDelivery = sync.Pool{New: func() any { return new([1]Delivery) }}

// store puts f in the session's mailbox, within max messages and maxBytes
// bytes (max 0: no bound), and tells the session of it.
func (s *Session) store(f frame, max, maxBytes int) error {
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
	s.stored(seq, slow, f)
	return nil
}

// stored tells the session that the store gave seq to f, and ends it when
// the store says it stopped taking its messages.
func (s *Session) stored(seq uint64, slow bool, f frame) {
	if s.heardFrame(seq, f) {
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
	p := oneDelivery.Get().(*[1]Delivery)
	p[0] = Delivery{Session: s.id, Body: f.body, Max: max, MaxBytes: maxBytes}
	err = s.b.store.Push(ctx, p[:])
	d := p[0]
	p[0] = Delivery{}
	oneDelivery.Put(p)
	if err == nil {
		err = d.Err
	}
	return d.Seq, d.Slow, err
}

// heardFrame notes that the store gave seq to f, keeping a copy in the
// tail, and wakes the session's connection. It reports whether another node
// has taken the session over by then.
func (s *Session) heardFrame(seq uint64, f frame) (moved bool) {
	now := time.Now()
	s.mu.Lock()
	keep := true
	switch n := len(s.tail); {
	case n > 0 && seq == s.tail[n-1].seq+1:
	case n == 0 || seq > s.tail[n-1].seq+1:
		s.trimTailLocked(n) // a gap: messages stored by other nodes
		s.tailBytes = 0
	default:
		keep = false // older than the tail's last: heard of already
	}
	if keep {
		e := entry{seq: seq, typ: f.typ, data: f.withSeq(seq), at: now}
		s.tail = append(s.tail, e)
		s.tailBytes += len(e.data)
		if !s.closed {
			s.b.m.queued(1)
		}
		o := s.b.opts
		i := 0
		for len(s.tail)-i > o.MailboxMessages || (s.tailBytes > o.MailboxBytes && len(s.tail)-i > 1) {
			s.tailBytes -= len(s.tail[i].data)
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

// trimTailLocked drops the tail's first n entries (their bytes already
// uncounted). An emptied tail keeps a small array for the next message
// (one at a time is the common case, which then allocates nothing), and
// lets a larger one go: an idle session holds little.
func (s *Session) trimTailLocked(n int) {
	if n == 0 {
		return
	}
	if !s.closed {
		s.b.m.queued(-n)
	}
	if n == len(s.tail) {
		if cap(s.tail) <= 2 {
			clear(s.tail)
			s.tail = s.tail[:0]
		} else {
			s.tail = nil
		}
		s.tailBytes = 0
		return
	}
	clear(s.tail[:n])
	s.tail = s.tail[n:]
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
	o := s.b.opts
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
	o := s.b.opts
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
	typ  string
	data []byte // the envelope's JSON, seq included
	at   time.Time
}

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
	ok, held := throttle(&s.refusalNext, &s.refusalHeld, refusalLogEvery, time.Now())
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
