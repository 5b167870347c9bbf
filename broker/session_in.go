// This file owns what a peer sends: Session.HandleRaw and Handle take one
// envelope from the transport, drop retries (the dedup window), answer
// what the broker answers itself (ack, ping, ice-servers, leave) and hand
// the rest to route.go.

package broker

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"time"
)

// HandleRaw decodes one envelope that the session's peer sent and handles
// it; a refusal goes to the peer as an error in its stream and is returned.
func (s *Session) HandleRaw(ctx context.Context, data []byte) error {
	env, err := Decode(data, s.b.opts.MaxEnvelope)
	if err != nil {
		s.Refuse("", err)
		return err
	}
	return s.Handle(ctx, env)
}

// Handle acts on one envelope that the session's peer sent: relays it, or
// answers it. A refusal goes to the peer as an error in its stream and is
// returned. It returns ErrSessionClosed once the session has ended, or
// ErrSessionMoved once another node has taken it over.
func (s *Session) Handle(ctx context.Context, env *Envelope) error {
	b := s.b
	if b.opts.LogEnvelopes {
		s.logger().Debug("envelope in", "type", env.Type, "to", env.To, "id", env.ID, "bytes", len(env.Payload))
	}
	s.handling.Lock()
	defer s.handling.Unlock()
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		moved := s.moved
		s.mu.Unlock()
		if moved {
			return ErrSessionMoved
		}
		return ErrSessionClosed
	}
	allowed := s.limiter.allow(now)
	dup := allowed && env.ID != "" && s.seenLocked(env.ID, now)
	s.mu.Unlock()
	if !allowed {
		err := &Error{Code: CodeRateLimited, Message: "too many envelopes: slow down", Ref: env.ID}
		s.Refuse(env.Type, err)
		return err
	}
	if dup {
		return nil
	}
	var err error
	switch env.Type {
	case TypeJoin:
		err = Errorf(CodeBadRequest, "this session has joined already")
	case TypeAck:
		var p struct {
			Seq *uint64 `json:"seq"`
		}
		if json.Unmarshal(env.Payload, &p) != nil || p.Seq == nil {
			err = Errorf(CodeBadRequest, `ack needs a payload {"seq": N}`)
		} else {
			err = s.Ack(*p.Seq)
		}
	case TypePing:
		if len(env.Payload) > MaxPingPayload {
			err = Errorf(CodeTooLarge, "a ping's payload may be at most %d bytes: its pong echoes it", MaxPingPayload)
			break
		}
		pong := &Envelope{Type: TypePong, Payload: env.Payload}
		s.sendDirect(pong.Encode())
	case TypeICEServers:
		s.sendDirect(b.iceAnswer(s))
	case TypeLeave:
		s.Close(ReasonLeave)
	default:
		err = b.route(ctx, s, env)
	}
	if err != nil {
		e := AsError(err)
		if e.Ref == "" && env.ID != "" {
			e = &Error{Code: e.Code, Message: e.Message, Ref: env.ID}
		}
		s.Refuse(env.Type, e)
		return e
	}
	return nil
}

// maxSeen is the most envelope ids a session remembers for dropping
// retries, in two generations of half as many: it remembers at least the
// last maxSeen/2 within the dedup window.
const maxSeen = 4096

// seenLocked records id and reports whether it was seen within the dedup
// window. Ids are kept as hashes, so that what they cost does not depend on
// their length.
func (s *Session) seenLocked(id string, now time.Time) bool {
	window := int64(s.b.opts.DedupWindow)
	h, t := maphash.String(s.b.seed, id), now.UnixNano()
	c := s.coldLocked()
	if at, ok := c.seen[h]; ok && t-at < window {
		return true
	}
	if at, ok := c.seenOld[h]; ok && t-at < window {
		return true
	}
	if c.seen == nil || len(c.seen) >= maxSeen/2 || t-c.seenSince >= window {
		c.seenOld, c.seen, c.seenSince = c.seen, make(map[uint64]int64), t
	}
	c.seen[h] = t
	return false
}
