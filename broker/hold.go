// This file owns the offline hold: messages for a peer that is not in its
// room wait here, within their bounds, until it joins (then they go on to
// its mailbox, session_out.go) or the hold expires (then the sender is
// told peer-unavailable).

package broker

import (
	"time"
)

// held is a message waiting, within the offline hold, for its receiver.
type held struct {
	f      frame
	sender *Session
	ref    string
	timer  *time.Timer
}

// size is what h counts against the bounds on held messages.
func (h *held) size() int { return len(h.f.body) }

// hold keeps f for peer to, who is not in room r, for the offline hold,
// within the bounds on what one session and this node hold: past them, the
// sender is answered peer-unavailable at once.
func (b *Broker) hold(r *room, to string, f frame, sender *Session, ref string) error {
	r.mu.Lock()
	if t := r.peers[to]; t != nil {
		// It joined meanwhile: its mailbox is written without the lock.
		r.mu.Unlock()
		if t.enqueue(f) == nil {
			return nil
		}
		r.mu.Lock() // it ended meanwhile: held all the same
	}
	defer r.mu.Unlock()
	h := &held{f: f, sender: sender, ref: ref}
	if err := b.countHeld(h, to); err != nil {
		return err
	}
	r.held[to] = append(r.held[to], h)
	h.timer = b.afterFunc(b.opts.OfflineHold, func() { b.expire(r, to, h) })
	return nil
}

// countHeld counts h against the bounds on held messages, or says why it
// cannot be held.
func (b *Broker) countHeld(h *held, to string) error {
	n := h.size()
	if s := h.sender; s != nil {
		s.mu.Lock()
		c := s.coldLocked()
		over := c.heldMsgs+1 > b.opts.MailboxMessages || c.heldBytes+n > b.opts.MailboxBytes
		if !over {
			c.heldMsgs++
			c.heldBytes += n
		}
		s.mu.Unlock()
		if over {
			return Errorf(CodePeerUnavailable, "peer %s is not in the room, and this session has the most messages waiting for absent peers (%d messages or %d bytes)", to, b.opts.MailboxMessages, b.opts.MailboxBytes)
		}
	}
	msgs, bytes := b.heldMsgs.Add(1), b.heldBytes.Add(int64(n))
	if msgs > int64(b.opts.HeldMessages) || bytes > int64(b.opts.HeldBytes) {
		b.heldMsgs.Add(-1)
		b.heldBytes.Add(-int64(n))
		b.uncountSender(h)
		return Errorf(CodePeerUnavailable, "peer %s is not in the room, and this node holds the most messages for absent peers; send again when it has joined", to)
	}
	return nil
}

// uncountHeld releases what h counted against the bounds on held messages.
func (b *Broker) uncountHeld(h *held) {
	b.heldMsgs.Add(-1)
	b.heldBytes.Add(-int64(h.size()))
	b.uncountSender(h)
}

func (b *Broker) uncountSender(h *held) {
	if s := h.sender; s != nil {
		s.mu.Lock()
		c := s.coldLocked()
		c.heldMsgs--
		c.heldBytes -= h.size()
		s.mu.Unlock()
	}
}

// expire ends h's wait: its sender is told peer-unavailable.
func (b *Broker) expire(r *room, to string, h *held) {
	r.mu.Lock()
	q := r.held[to]
	found := false
	for i, x := range q {
		if x == h {
			q = append(q[:i:i], q[i+1:]...)
			found = true
			break
		}
	}
	if len(q) == 0 {
		delete(r.held, to)
	} else {
		r.held[to] = q
	}
	b.dropRoomIfEmptyLocked(r)
	r.mu.Unlock()
	if found {
		b.uncountHeld(h)
	}
	if found && h.sender != nil {
		h.sender.Refuse(h.f.typ, &Error{Code: CodePeerUnavailable, Message: "peer " + to + " is not in room " + r.id, Ref: h.ref})
	}
}

// takeHeldLocked takes what waited for peer, who just joined, on this node
// or another, out of the hold; t is peer's session if it is on this node.
// The caller holds r's lock, and hands the messages on with deliverHeld
// once it has let it go.
func (b *Broker) takeHeldLocked(r *room, peer string) (q []*held, t *Session) {
	q = r.held[peer]
	if len(q) == 0 {
		return nil, nil
	}
	delete(r.held, peer)
	for _, h := range q {
		h.timer.Stop()
		b.uncountHeld(h)
	}
	return q, r.peers[peer]
}

// deliverHeld hands what takeHeldLocked took to peer: into t's mailbox when
// it is on this node, else to its node. A sender whose message cannot be
// delivered is told so.
func (b *Broker) deliverHeld(r *room, peer string, q []*held, t *Session) {
	if len(q) == 0 {
		return
	}
	if t != nil {
		ns := make([]notice, len(q))
		for i, h := range q {
			ns[i] = notice{t, h.f}
		}
		b.deliver(ns)
		return
	}
	ctx := b.opCtx()
	remote := Member{Peer: peer}
	if b.shared {
		members, err := b.bp.Members(ctx, r.id)
		if err != nil {
			b.log.Error("looking up a peer for its held messages", "room", r.id, "error", err)
		}
		for _, m := range members {
			if m.Peer == peer {
				remote = m
			}
		}
	}
	for _, h := range q {
		if err := b.deliverRemote(ctx, r.id, "", []Member{remote}, h.f); err != nil {
			b.log.Error("delivering a held message", "room", r.id, "error", err)
			if h.sender != nil {
				h.sender.Refuse(h.f.typ, &Error{Code: AsError(err).Code, Message: "the message waited for " + peer + " but could not be delivered: " + AsError(err).Message, Ref: h.ref})
			}
		}
	}
}
