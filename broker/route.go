// This file owns routing: a peer's envelope goes to one peer or to the
// whole room, on this node or on another; a receiver that is not in the
// room goes to the offline hold (hold.go); a receiver on another node gets
// it through the Store and the Backplane (cluster.go, on that node); every
// receiver on this node gets it in its mailbox through session_out.go.

package broker

import (
	"context"
	"errors"
)

// route relays a peer's envelope to its receiver, or to the room.
func (b *Broker) route(ctx context.Context, s *Session, env *Envelope) error {
	r := s.room
	env.Room, env.From = r.id, s.peer
	f := newFrame(env)
	b.m.relayed(env.Type)
	if env.To == "" {
		r.mu.RLock()
		for _, other := range r.peers {
			if other != s {
				_ = other.enqueue(f)
			}
		}
		r.mu.RUnlock()
		if !b.shared {
			return b.bp.Publish(ctx, Event{Kind: EventRelay, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Type: f.typ, Body: f.body})
		}
		members, err := b.bp.Members(ctx, r.id)
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.Node != b.opts.NodeID && m.Peer != s.peer {
				if err := b.deliverRemote(ctx, r.id, s.peer, m, f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if env.To == s.peer {
		return Errorf(CodeBadRequest, "a peer cannot send to itself")
	}
	r.mu.RLock()
	t := r.peers[env.To]
	if t != nil && t.enqueue(f.single()) == nil {
		r.mu.RUnlock()
		return nil
	}
	r.mu.RUnlock()
	members, err := b.bp.Members(ctx, r.id)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.Peer == env.To && m.Node != b.opts.NodeID {
			return b.deliverRemote(ctx, r.id, s.peer, m, f)
		}
	}
	return b.hold(r, env.To, f, s, env.ID)
}

// deliverRemote hands f, from peer from, to member m, served by another
// node: into its sessionBox in the store, with word to its node, or over the
// backplane to its node when there is no store.
func (b *Broker) deliverRemote(ctx context.Context, room, from string, m Member, f frame) error {
	if !b.shared {
		return b.bp.Publish(ctx, Event{Kind: EventRelay, Node: b.opts.NodeID, Room: room, Peer: from, To: m.Peer, Type: f.typ, Body: f.body})
	}
	ds := []Delivery{{Session: m.Session, Body: f.body, Max: b.opts.MailboxMessages, MaxBytes: b.opts.MailboxBytes}}
	err := b.store.Push(ctx, ds)
	if err == nil {
		err = ds[0].Err
	}
	seq, slow := ds[0].Seq, ds[0].Slow
	if errors.Is(err, ErrNoSession) {
		return Errorf(CodePeerUnavailable, "peer %s has gone", m.Peer)
	}
	if err != nil {
		return err
	}
	// The session may have moved to this node since m was read: its wake
	// goes to the other nodes only.
	b.mu.RLock()
	local := b.sessions[m.Session]
	b.mu.RUnlock()
	if local != nil && !slow {
		local.heardFrame(seq, f)
	}
	kind := EventWake
	if slow {
		kind = EventSlow
	}
	// The wake carries the message, so that its node need not read it back.
	return b.bp.Publish(ctx, Event{Kind: kind, Node: b.opts.NodeID, Room: room, To: m.Peer, Session: m.Session, Seq: seq, Type: f.typ, Body: f.body})
}
