// This file owns routing: a peer's envelope goes to one peer or to the
// whole room, on this node or on another; a receiver that is not in the
// room goes to the offline hold (hold.go); a receiver on another node gets
// it through the Store and the Backplane (cluster.go, on that node); every
// receiver on this node gets it in its mailbox through session_out.go.

package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
)

// receivers holds the lists of a broadcast's receivers, so that a
// broadcast allocates none.
var receivers = sync.Pool{New: func() any { return new([]notice) }}

// route relays a peer's envelope to its receiver, or to the room.
func (b *Broker) route(ctx context.Context, s *Session, env *Envelope) error {
	if _, ok := ctx.Deadline(); !ok {
		// A transport's read loop may hand no deadline (WebSocket does
		// not): the store and backplane calls below get the broker's.
		ctx = b.opCtx()
	}
	r := s.room
	env.Room, env.From = r.id, s.peer
	f := newFrame(env)
	b.m.relayed(env.Type)
	if env.To == "" {
		// The room's peers are read under its lock; their mailboxes are
		// written after it is let go, all in one store call.
		p := receivers.Get().(*[]notice)
		ns := (*p)[:0]
		r.mu.RLock()
		for _, other := range r.peers {
			if other != s {
				ns = append(ns, notice{other, f})
			}
		}
		r.mu.RUnlock()
		b.deliver(ns)
		clear(ns)
		*p = ns[:0]
		receivers.Put(p)
		if !b.shared {
			return b.bp.Publish(ctx, Event{Kind: EventRelay, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Type: f.typ, Body: f.body})
		}
		members, err := b.bp.Members(ctx, r.id)
		if err != nil {
			return err
		}
		members = slices.DeleteFunc(members, func(m Member) bool { return m.Node == b.opts.NodeID || m.Peer == s.peer })
		return b.deliverRemote(ctx, r.id, s.peer, members, f)
	}
	if env.To == s.peer {
		return Errorf(CodeBadRequest, "a peer cannot send to itself")
	}
	r.mu.RLock()
	t := r.peers[env.To]
	r.mu.RUnlock()
	if t != nil && t.enqueue(f.single()) == nil {
		return nil
	}
	members, err := b.bp.Members(ctx, r.id)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.Peer == env.To && m.Node != b.opts.NodeID {
			return b.deliverRemote(ctx, r.id, s.peer, []Member{m}, f)
		}
	}
	return b.hold(r, env.To, f, s, env.ID)
}

// deliverRemote hands f, from peer from, to members ms, served by other
// nodes: into their mailboxes in the store, in one store call, with word to
// their nodes; or over the backplane to their nodes when the store is this
// node's own.
func (b *Broker) deliverRemote(ctx context.Context, room, from string, ms []Member, f frame) error {
	if len(ms) == 0 {
		return nil
	}
	if !b.shared {
		for _, m := range ms {
			if err := b.bp.Publish(ctx, Event{Kind: EventRelay, Node: b.opts.NodeID, Room: room, Peer: from, To: m.Peer, Type: f.typ, Body: f.body}); err != nil {
				return err
			}
		}
		return nil
	}
	ds := make([]Delivery, len(ms))
	for i, m := range ms {
		ds[i] = Delivery{Session: m.Session, Body: f.body, Max: b.opts.MailboxMessages, MaxBytes: b.opts.MailboxBytes}
	}
	if err := b.store.Push(ctx, ds); err != nil {
		return err
	}
	var first error
	for i, m := range ms {
		d := ds[i]
		if errors.Is(d.Err, ErrNoSession) {
			d.Err = Errorf(CodePeerUnavailable, "peer %s has gone", m.Peer)
		}
		if d.Err != nil {
			first = cmp.Or(first, d.Err)
			continue
		}
		// The session may have moved to this node since m was read: its
		// wake goes to the other nodes only.
		b.mu.RLock()
		local := b.sessions[m.Session]
		b.mu.RUnlock()
		if local != nil && !d.Slow {
			local.heardFrame(d.Seq, f)
		}
		kind := EventWake
		if d.Slow {
			kind = EventSlow
		}
		// The wake carries the message, so that its node need not read it back.
		if err := b.bp.Publish(ctx, Event{Kind: kind, Node: b.opts.NodeID, Room: room, To: m.Peer, Session: m.Session, Seq: d.Seq, Type: f.typ, Body: f.body}); err != nil {
			first = cmp.Or(first, err)
		}
	}
	return first
}
