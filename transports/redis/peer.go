package redis

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/internal/writer"
)

// Timings of the writer.
const (
	// retryMin and retryMax bound the backoff of a publish that Redis
	// refused or that reached no subscriber.
	retryMin = 2 * time.Millisecond
	retryMax = time.Second
	// welcomeWait is how long the welcome is offered on the reply channel
	// while nobody listens there.
	welcomeWait = 5 * time.Second
)

// peer is one session carried over Redis. Its handler goroutine hands what
// the peer publishes to the session, in order; its writer goroutine
// publishes what the session has for the peer. The handler lives as long as
// the session is carried here; the writer is replaced when the peer resumes
// over Redis.
type peer struct {
	t       *Transport
	sess    *broker.Session
	channel string
	log     *slog.Logger

	heard atomic.Int64 // unix nanoseconds of the last envelope from the peer
	acks  *writer.Acks

	inMu     sync.Mutex
	inbox    chan []byte
	inClosed bool
	quit     chan struct{} // closed when the session leaves this transport
	quitOnce sync.Once
	handled  chan struct{} // closed when the handler has ended

	wmu  sync.Mutex // serialises writer changes
	w    *writer.Gen
	left atomic.Bool // the session left this transport: a resume needs a new peer
}

func newPeer(t *Transport, s *broker.Session) *peer {
	p := &peer{
		t:       t,
		sess:    s,
		channel: t.keys.peer(s.Room(), s.Peer()),
		log:     s.Logger(),
		acks:    writer.NewAcks(),
		inbox:   make(chan []byte, inboxSize),
		quit:    make(chan struct{}),
		handled: make(chan struct{}),
	}
	p.heard.Store(time.Now().UnixNano())
	return p
}

// deliver queues an envelope from the peer for the handler. sessionLen is
// the length of the session field's value, which does not count towards the
// envelope limit.
func (p *peer) deliver(data []byte, sessionLen int) {
	p.heard.Store(time.Now().UnixNano())
	if len(data) > p.t.maxEnv+fieldAllowance+sessionLen {
		p.sess.Refuse("", broker.Errorf(broker.CodeTooLarge, "envelope is %d bytes, the limit is %d", len(data)-fieldAllowance-sessionLen, p.t.maxEnv))
		return
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.inClosed {
		return
	}
	select {
	case p.inbox <- data:
	default:
		p.sess.Refuse("", broker.Errorf(broker.CodeRateLimited, "more than %d envelopes wait to be handled: slow down", inboxSize))
	}
}

func (p *peer) startHandler() { go p.handle() }

// handle hands the peer's envelopes to the session until the session leaves
// this transport; then it handles what was already queued and ends.
func (p *peer) handle() {
	defer close(p.handled)
	for {
		select {
		case data := <-p.inbox:
			p.handleOne(data)
		case <-p.quit:
			p.inMu.Lock()
			p.inClosed = true
			p.inMu.Unlock()
			for {
				select {
				case data := <-p.inbox:
					p.handleOne(data)
				default:
					return
				}
			}
		}
	}
}

func (p *peer) handleOne(data []byte) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("handling an envelope panicked", "panic", r)
		}
	}()
	// Decode ignores the session field, as it ignores any unknown field.
	env, err := broker.Decode(data, 0)
	if err != nil {
		p.sess.Refuse("", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
	defer cancel()
	err = p.sess.Handle(ctx, env)
	if errors.Is(err, broker.ErrSessionClosed) {
		// The writer may be gone already: the peer is told here.
		e := broker.Errorf(broker.CodeSessionExpired, "the session has ended")
		e.Ref = env.ID
		p.t.publishOnce(p.channel, broker.ErrorFrame(e))
		return
	}
	if err != nil || env.Type != broker.TypeAck {
		return
	}
	var a struct {
		Seq uint64 `json:"seq"`
	}
	if json.Unmarshal(env.Payload, &a) == nil {
		p.acks.Note(a.Seq)
	}
}

// leave ends the peer's life on this transport: it is forgotten and its
// handler ends. It does not end the session.
func (p *peer) leave() {
	p.left.Store(true)
	p.t.forget(p)
	p.quitOnce.Do(func() { close(p.quit) })
}

// shutdown stops the writer and the handler and waits for both.
func (p *peer) shutdown() {
	p.wmu.Lock()
	if w := p.w; w != nil {
		w.Stop()
		p.w = nil
	}
	p.leave()
	p.wmu.Unlock()
	<-p.handled
}

// startWriter stops the current writer, if any, and starts one for joined:
// it publishes the welcome to reply, then the session's messages after
// joined.After to the peer channel. It reports false, starting nothing, when
// the peer has left this transport meanwhile.
func (p *peer) startWriter(joined *broker.Joined, reply string) bool {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if old := p.w; old != nil {
		old.Stop() // nothing of the old one is published after the new one starts
		p.w = nil
	}
	if p.left.Load() {
		return false
	}
	p.heard.Store(time.Now().UnixNano())
	p.acks.Note(joined.After)
	p.w = writer.Start(p.sess, p.log, Name, func(w *writer.Gen) bool { return p.write(w, joined, reply) }, p.leave)
	return true
}

// sent is one published envelope not yet acknowledged.
type sent struct {
	seq  uint64
	size int
}

// write publishes for one attachment. It reports whether the session is
// over for this transport (ended, timed out, or carried elsewhere now), as
// opposed to stopped for a newer writer or a shutdown.
func (p *peer) write(w *writer.Gen, joined *broker.Joined, reply string) (over bool) {
	idle := time.NewTimer(p.t.opts.IdleTimeout)
	defer idle.Stop()
	switch p.publish(w, reply, joined.Welcome, true) {
	case pubStopped:
		return false
	case pubOver:
		return true
	case pubUnheard:
		p.log.Info("nobody heard the welcome on the reply channel")
		if !joined.Resumed {
			p.sess.Close(broker.ReasonTimeout)
		}
		return true
	}
	after := joined.After
	var out []sent // published, not acknowledged, in seq order
	outBytes := 0
	for {
		acked := p.acks.Seq()
		for len(out) > 0 && out[0].seq <= acked {
			outBytes -= out[0].size
			out = out[1:]
		}
		var wait <-chan struct{}
		if len(out) < p.t.window && outBytes < p.t.windowB {
			// The attachment's Pending, not the session's: once another
			// connection has taken the session over, this one takes nothing.
			frames, last, ready, err := w.Att.Pending(after)
			if err != nil {
				var pe *broker.Error
				if errors.As(err, &pe) {
					p.publish(w, p.channel, broker.ErrorFrame(pe), false)
				}
				return true
			}
			firstSeq := len(frames) - int(last-after)
			base := after
			for i, f := range frames {
				if i >= firstSeq && (len(out) >= p.t.window || outBytes >= p.t.windowB) {
					// The window closed within the batch: the rest stays in
					// the mailbox, to be taken again after an ack.
					ready = nil
					break
				}
				switch p.publish(w, p.channel, f, false) {
				case pubStopped:
					return false
				case pubOver:
					return true
				}
				if i >= firstSeq {
					after = base + uint64(i-firstSeq) + 1
					out = append(out, sent{seq: after, size: len(f)})
					outBytes += len(f)
				}
			}
			if ready == nil {
				continue
			}
			wait = ready
		}
		// Else the window is full: wait for an acknowledgement. The session
		// ending is only seen through Pending, so a full window looks again
		// every second.
		left := p.idleLeft()
		if wait == nil {
			left = min(left, time.Second)
		}
		idle.Reset(left)
		select {
		case <-wait:
		case <-p.acks.Wake():
		case <-idle.C:
			if p.idleLeft() <= 0 {
				p.timeout()
				return true
			}
			if wait == nil && p.sess.Closed() {
				return true
			}
		case <-w.Att.Gone():
			return true
		case <-w.Stopping():
			return false
		}
	}
}

// idleLeft is how long until the peer has been silent for the idle timeout.
func (p *peer) idleLeft() time.Duration {
	return time.Until(time.Unix(0, p.heard.Load()).Add(p.t.opts.IdleTimeout))
}

func (p *peer) timeout() {
	p.log.Info("redis peer silent too long", "idle_timeout", p.t.opts.IdleTimeout)
	p.sess.Close(broker.ReasonTimeout)
}

// Outcomes of publish.
const (
	pubDone    = iota // published and heard
	pubStopped        // the writer was stopped
	pubOver           // the session is over for this writer: superseded, or the peer timed out
	pubUnheard        // (welcome only) nobody listened within welcomeWait
)

// publish publishes data to ch. While Redis fails, or nobody is subscribed
// to ch (PUBLISH answers 0: the peer is not listening yet, or its
// subscription is being restored), it tries again with backoff, so that the
// peer gets every envelope, in order, once it listens. On a Redis Cluster,
// where PUBLISH counts only one node's subscribers, a 0 is taken as heard.
func (p *peer) publish(w *writer.Gen, ch string, data []byte, welcome bool) int {
	delay := retryMin
	var deadline time.Time
	if welcome {
		deadline = time.Now().Add(welcomeWait)
	}
	failing := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
		n, err := p.t.client.Publish(ctx, ch, data).Result()
		cancel()
		if err == nil && (n > 0 || p.t.cluster) {
			if failing {
				p.log.Info("redis publish to peer succeeded again")
			}
			return pubDone
		}
		if err != nil && !failing {
			p.log.Warn("redis publish to peer failed; trying again", "error", err)
			failing = true
		}
		p.t.m.retries.Inc()
		if welcome && time.Now().After(deadline) {
			return pubUnheard
		}
		if p.idleLeft() <= 0 {
			p.timeout()
			return pubOver
		}
		select {
		case <-time.After(delay):
		case <-w.Att.Gone():
			return pubOver
		case <-w.Stopping():
			return pubStopped
		}
		delay = min(delay*2, retryMax)
	}
}
