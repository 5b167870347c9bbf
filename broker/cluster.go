// This file owns what makes several nodes one cluster: acting on the
// events other nodes publish on the Backplane (remote: a relay or a wake
// goes on to the receiver's mailbox, session_out.go), taking over a
// session another node served (adopt) and letting one go (drop), and
// keeping this node's sessions alive in a shared Store.

package broker

import (
	"context"
	"slices"
	"time"
)

// remote acts on an event from another node.
func (b *Broker) remote(ev Event) {
	if ev.Kind == EventResync {
		b.spawn(b.resync)
		return
	}
	r := b.lockRoom(ev.Room, false)
	if r == nil {
		return
	}
	var q []*held
	var qt *Session
	// Under the room's lock the event is ordered with the room's other
	// changes; the mailboxes it writes are written once the lock is let go
	// (room.send, deliverHeld).
	defer func() {
		r.send(b)
		b.deliverHeld(r, ev.Peer, q, qt)
	}()
	defer r.mu.Unlock()
	switch ev.Kind {
	case EventRelay:
		f := frame{typ: ev.Type, body: ev.Body}
		if ev.To != "" {
			if t := r.peers[ev.To]; t != nil {
				r.noteLocked(t, f)
			}
			return
		}
		for _, s := range r.peers {
			if s.peer != ev.Peer {
				r.noteLocked(s, f)
			}
		}
	case EventJoined:
		f := newFrame(peerJoined(r.id, ev.Peer, ev.Meta))
		for _, s := range r.peers {
			s.tellJoined(r, ev.Peer, f)
		}
		q, qt = b.takeHeldLocked(r, ev.Peer)
	case EventLeft:
		f := newFrame(peerLeft(r.id, ev.Peer, ev.Reason))
		for _, s := range r.peers {
			s.tellLeft(r, ev.Peer, f)
		}
	case EventWake:
		if s := r.peers[ev.To]; s != nil && s.id == ev.Session {
			if ev.Body != nil {
				s.heardFrame(ev.Seq, frame{typ: ev.Type, body: ev.Body})
			} else {
				s.heard(ev.Seq)
			}
		}
	case EventSlow:
		if s := r.peers[ev.To]; s != nil && s.id == ev.Session {
			s.slow()
		}
	case EventMoved:
		if s := r.peers[ev.Peer]; s != nil && s.id == ev.Session {
			delete(r.peers, ev.Peer)
			b.spawn(func() { b.drop(s) })
		}
	}
	b.dropRoomIfEmptyLocked(r)
}

// resync looks at the store again for every session of this node: events
// that told of new messages may have been lost while the backplane was cut off.
func (b *Broker) resync() {
	if !b.shared {
		return
	}
	b.mu.RLock()
	all := make([]*Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.RUnlock()
	for _, s := range all {
		last, _, err := b.store.Seqs(b.opCtx(), s.id)
		if err == nil {
			s.heard(last)
		}
	}
	b.log.Info("looked at the store again after the backplane was cut off", "sessions", len(all))
}

// adopt takes over, from the store, a session that another node served.
func (b *Broker) adopt(id string) (*Session, error) {
	b.adoptMu.Lock()
	defer b.adoptMu.Unlock()
	b.mu.RLock()
	s, ok := b.sessions[id]
	b.mu.RUnlock()
	if ok {
		return s, nil
	}
	st := b.store
	ctx, cancel := context.WithTimeout(b.ctx, storeOp)
	defer cancel()
	rec, err := st.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	last, _, err := st.Seqs(ctx, id)
	if err != nil {
		return nil, err
	}
	s = &Session{
		b:         b,
		id:        id,
		logID:     LogID(id),
		peer:      rec.Peer,
		meta:      rec.Meta,
		transport: rec.Transport,
		linger:    b.opts.ResumeWindow,
		limiter:   newBucket(b.opts.Rate, b.opts.Burst),
		last:      last,
		box:       boxOf(st, id),
	}
	// As for a join (enter), the room's lock is held across Members and
	// Claim: an event about the room waits until the session is in it.
	r := b.lockRoom(rec.Room, true)
	s.room = r
	before, err := b.bp.Members(ctx, r.id)
	if err != nil {
		b.dropRoomIfEmptyLocked(r)
		r.mu.Unlock()
		return nil, err
	}
	// A session whose node died long enough ago was reported gone; taken
	// over now, it is announced again.
	wasGone := !slices.ContainsFunc(before, func(m Member) bool { return m.Session == id })
	me := Member{Peer: s.peer, Meta: s.meta, Session: id, Node: b.opts.NodeID}
	if err := b.bp.Claim(ctx, r.id, me); err != nil {
		b.dropRoomIfEmptyLocked(r)
		r.mu.Unlock()
		return nil, err // another session holds the id now: this one is over
	}
	s.knowPeers(before)
	r.peers[s.peer] = s
	q, qt := b.takeHeldLocked(r, s.peer)
	s.timer = b.afterFunc(s.linger, func() { s.Close(ReasonTimeout) })
	if wasGone {
		f := newFrame(peerJoined(r.id, s.peer, s.meta))
		for _, other := range r.peers {
			if other != s {
				other.tellJoined(r, s.peer, f)
			}
		}
	}
	b.mu.Lock()
	b.sessions[id] = s
	b.count++
	b.mu.Unlock()
	r.mu.Unlock()
	r.send(b)
	b.deliverHeld(r, s.peer, q, qt)
	rec.Node = b.opts.NodeID
	if err := st.Save(ctx, rec, b.storeTTL()); err != nil {
		s.logger().Error("recording the take-over in the store", "error", err)
	}
	// A message stored for the session while it was being taken over was
	// told of to its old node; from now on deliverRemote tells this one.
	if last, _, err := st.Seqs(ctx, id); err == nil {
		s.heard(last)
	}
	_ = b.bp.Publish(ctx, Event{Kind: EventMoved, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Session: id})
	if wasGone {
		_ = b.bp.Publish(ctx, Event{Kind: EventJoined, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Meta: s.meta})
	}
	b.m.sessionOpened(rec.Transport)
	s.logger().Info("session taken over", "from", rec.Node)
	return s, nil
}

// wakeElsewhere tells the node that took s over that the store holds
// messages for it up to seq.
func (b *Broker) wakeElsewhere(s *Session, seq uint64) {
	_ = b.bp.Publish(b.opCtx(), Event{Kind: EventWake, Node: b.opts.NodeID, Room: s.room.id, To: s.peer, Session: s.id, Seq: seq})
}

// drop forgets a session that another node took over, without telling
// anyone it left: its connection here is closed, and the session goes on
// there.
func (b *Broker) drop(s *Session) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.moved = true, true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.releaseConnLocked()
	s.wakeLocked()
	transport, last, depth := s.transport, s.last, len(s.tail.live())
	s.mu.Unlock()
	b.m.queued(-depth)
	b.mu.Lock()
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.count--
	b.mu.Unlock()
	// Until this node heard of the move, it took the session for its own
	// and told nobody else of what it stored for it.
	b.wakeElsewhere(s, last)
	b.m.sessionClosed(transport)
	s.logger().Info("session moved to another node")
}

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
		if err := b.store.Touch(b.opCtx(), ids, b.storeTTL()); err != nil {
			b.log.Error("keeping sessions in the store", "error", err)
		}
	}
}
