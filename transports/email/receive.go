package email

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Bounds of what the transport remembers (docs/protocol.md, section 6, Email).
const (
	// maxRemembered bounds each memory: Message-IDs handled, and senders
	// told of a bad mail; past it the oldest is forgotten.
	maxRemembered = 10000
	// dedupWindow is how long a Message-ID is remembered.
	dedupWindow = time.Hour
	// errorMailEvery is how often one sender is told of a bad mail at most.
	errorMailEvery = time.Hour
	// handleTimeout bounds the handling of one envelope.
	handleTimeout = 10 * time.Second
	// maxAnswersInFlight bounds the mails that answer no session (refused
	// joins, error mails) being sent or retried at once; past it an answer
	// is dropped, logged and counted.
	maxAnswersInFlight = 64
)

// handleMail takes one mail addressed to the broker, from the SMTP server or
// the IMAP receiver. nullSender is set when its reverse-path was empty. It
// never fails: whatever is wrong is answered by mail, or logged and counted.
func (t *Transport) handleMail(raw []byte, nullSender bool) {
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			t.m.parseFailed("panic")
			t.log.Error("handling a mail panicked", "panic", r)
		}
	}()
	t.m.mailIn()
	if nullSender {
		t.ignore("null reverse-path")
		return
	}
	in, err := ParseMail(bytes.NewReader(raw), t.opts.MaxMailBytes)
	if in == nil {
		t.m.parseFailed("header")
		t.log.Info("unreadable mail dropped: nobody to answer", "error", err)
		return
	}
	switch {
	case in.Automatic != "":
		t.ignore(in.Automatic)
		return
	case in.From == t.opts.Address:
		t.ignore("from the broker's own address")
		return
	}
	log := t.log.With("from", in.From)
	var p *peer
	if in.Session != "" {
		t.mu.Lock()
		p = t.peers[in.Session]
		t.mu.Unlock()
		if p != nil && p.addr != in.From {
			p = nil
		}
	}
	if err != nil && p != nil && in.MessageID != "" {
		if t.seen.checkAndAdd(in.From+" "+in.MessageID, time.Now()) {
			t.m.dropped("duplicate")
			return
		}
		// The peer proved who it is: it is told in its session's stream.
		t.m.parseFailed(parseReason(err))
		p.heardNow()
		code := broker.CodeBadRequest
		if errors.Is(err, ErrMailTooLarge) {
			code = broker.CodeTooLarge
		}
		p.sess.Refuse("", broker.Errorf(code, "%s", err.Error()))
		return
	}
	if err != nil {
		t.m.parseFailed(parseReason(err))
		code := broker.CodeBadRequest
		if errors.Is(err, ErrMailTooLarge) {
			code = broker.CodeTooLarge
		}
		t.refuseMail(log, in.From, broker.Errorf(code, "%s", err.Error()))
		return
	}
	if in.MessageID == "" {
		t.m.parseFailed("no-message-id")
		t.refuseMail(log, in.From, broker.Errorf(broker.CodeBadRequest, "a mail to the broker needs a Message-ID"))
		return
	}
	if t.seen.checkAndAdd(in.From+" "+in.MessageID, time.Now()) {
		t.m.dropped("duplicate")
		log.Debug("duplicate mail dropped", "message_id", in.MessageID)
		return
	}
	envs := in.Envelopes
	log.Debug("email: mail from a peer", "envelopes", len(envs), "session_header", in.Session != "", "peer", p != nil)
	// A resume is handled as a join, whatever the header; any other join
	// on a joined session is the session's to refuse.
	if in.Session != "" && !isResume(envs[0]) {
		if p != nil {
			p.heardNow()
			p.handle(envs)
			return
		}
		if !isJoin(envs[0]) {
			t.mu.Lock()
			_, carried := t.peers[in.Session] // by another address
			t.mu.Unlock()
			if s, ok := t.b.LocalSession(in.Session); ok && !carried && (s.Closed() || s.Transport() != Name) {
				t.refuseMail(log, in.From, broker.Errorf(broker.CodeSessionExpired, "this session is not open over email: resume it with a join, or start a new one"))
				return
			}
			t.refuseMail(log, in.From, broker.Errorf(broker.CodeUnauthorized, "the %s header names no session of this address", HeaderSession))
			return
		}
		// A join with a session header that names no session of this
		// address: the header is ignored.
	}
	if !isJoin(envs[0]) {
		t.refuseMail(log, in.From, broker.Errorf(broker.CodeBadRequest, "the first envelope must be a join (or the mail lacks its %s header)", HeaderSession))
		return
	}
	p = t.join(log, in.From, envs[0])
	if p != nil && len(envs) > 1 {
		p.handle(envs[1:])
	}
}

func parseReason(err error) string {
	switch {
	case errors.Is(err, ErrMailTooLarge):
		return "too-large"
	case errors.Is(err, ErrNoEnvelope):
		return "no-envelope"
	}
	return "malformed"
}

// ignore counts and logs an automatic mail, which is never answered.
func (t *Transport) ignore(why string) {
	t.m.dropped("automatic")
	t.log.Debug("automatic mail ignored", "why", why)
}

// isResume reports whether raw is a join that resumes a session.
func isResume(raw json.RawMessage) bool {
	var e struct {
		Type    string `json:"type"`
		Payload struct {
			Resume json.RawMessage `json:"resume"`
		} `json:"payload"`
	}
	return json.Unmarshal(raw, &e) == nil && e.Type == broker.TypeJoin && len(e.Payload.Resume) > 0 && string(e.Payload.Resume) != "null"
}

func isJoin(raw json.RawMessage) bool {
	var e struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(raw, &e) == nil && e.Type == broker.TypeJoin
}

// refuseMail answers a mail that no session takes with an error mail, at
// most one per sender per errorMailEvery; past that it is only logged.
func (t *Transport) refuseMail(log *slog.Logger, to string, e *broker.Error) {
	if t.warned.checkAndAdd(to, time.Now()) {
		t.m.dropped("refused-quietly")
		log.Info("mail refused; the sender was told within the hour already", "code", e.Code, "error", e.Message)
		return
	}
	log.Info("mail refused", "code", e.Code, "error", e.Message)
	t.sendOnce(to, "", broker.ErrorFrame(e))
}

// sendOnce mails frames outside any session (a refusal), in the background,
// tried again as any mail is, for at most the resume window.
func (t *Transport) sendOnce(to, room string, frames ...[]byte) {
	raw, err := BuildMail(Outgoing{From: t.opts.Address, To: to, Room: room, MessageID: "sb." + randomHex(8) + ".0@" + t.opts.domain(), Frames: frames})
	if err != nil {
		t.log.Error("building a mail", "error", err)
		return
	}
	select {
	case t.answering <- struct{}{}:
	default:
		t.m.dropped("answers-full")
		t.log.Warn("too many answers are being mailed: one is dropped", "to", to, "in_flight", maxAnswersInFlight)
		return
	}
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		<-t.answering
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer func() { <-t.answering }()
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.ResumeWindow)
		defer cancel()
		if err := t.submit.sendRetrying(ctx, t.m, t.opts.Address, to, raw, t.quit); err != nil {
			t.log.Warn("an answer could not be mailed", "to", to, "error", err)
		}
	}()
}

// join admits the peer of a join envelope that from mailed, and starts
// mailing it; a refusal is mailed as an error. It returns the peer, or nil.
func (t *Transport) join(log *slog.Logger, from string, data []byte) *peer {
	ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
	defer cancel()
	env, err := broker.Decode(data, t.maxEnv)
	var joined *broker.Joined
	if err == nil {
		var req broker.JoinRequest
		if req, err = broker.ParseJoin(env, Name); err == nil {
			req.Linger = t.opts.ResumeWindow
			req.Client = "email:" + from // the per-address join rate
			if req.Resume != nil {
				t.mu.Lock()
				p := t.peers[req.Resume.Session]
				t.mu.Unlock()
				if p != nil && p.addr != from {
					err = broker.Errorf(broker.CodeUnauthorized, "this session belongs to another address")
				}
			}
			if err == nil {
				joined, err = t.b.Join(ctx, req)
			}
		}
		if pe := (*broker.Error)(nil); errors.As(err, &pe) && pe.Ref == "" {
			pe.Ref = env.ID
		}
	}
	if err != nil {
		e := broker.AsError(err)
		level := slog.LevelInfo
		if e.Code == broker.CodeInternal {
			level = slog.LevelError
		}
		log.Log(ctx, level, "email join refused", "code", e.Code, "error", err)
		t.sendOnce(from, "", broker.ErrorFrame(e))
		return nil
	}
	return t.serve(joined, from)
}

// serve starts (or, on a resume, restarts) mailing a joined session to addr.
func (t *Transport) serve(joined *broker.Joined, addr string) *peer {
	s := joined.Session
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		return nil
	}
	p := t.peers[s.Secret()]
	if p == nil {
		p = newPeer(t, s, addr)
		t.peers[s.Secret()] = p
	}
	t.mu.Unlock()
	p.heardNow()
	p.startWriter(joined)
	return p
}

// forget removes p from the transport if it is still there.
func (t *Transport) forget(p *peer) {
	t.mu.Lock()
	if t.peers[p.sess.Secret()] == p {
		delete(t.peers, p.sess.Secret())
	}
	t.mu.Unlock()
}

// handle hands a peer's envelopes to its session, in order.
func (p *peer) handle(envs []json.RawMessage) {
	for _, data := range envs {
		ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
		err := p.sess.HandleRaw(ctx, data)
		cancel()
		if err != nil {
			p.log.Debug("email: envelope refused", "error", err)
		}
		if errors.Is(err, broker.ErrSessionClosed) {
			e := broker.Errorf(broker.CodeSessionExpired, "the session has ended")
			p.t.refuseMail(p.log, p.addr, e)
			return
		}
		if err == nil {
			var a struct {
				Type    string `json:"type"`
				Payload struct {
					Seq uint64 `json:"seq"`
				} `json:"payload"`
			}
			if json.Unmarshal(data, &a) == nil && a.Type == broker.TypeAck {
				p.acks.Note(a.Payload.Seq)
			}
		}
	}
}

var errStopped = fmt.Errorf("email: stopped")
