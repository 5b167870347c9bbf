package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/internal/writer"
)

// peer is one session carried over email: mail from its address with its
// session header is handed to the session, and its writer goroutine mails
// the session's messages to the address, gathered for the batch delay.
type peer struct {
	t      *Transport
	sess   *broker.Session
	addr   string
	log    *slog.Logger
	thread string // random id of the session's mail thread

	heard atomic.Int64 // unix nanoseconds of the last mail from the peer
	acks  *writer.Acks

	wmu    sync.Mutex // serialises writer changes
	w      *writer.Gen
	n      int    // mails sent in the thread
	first  string // Message-ID of the thread's first mail
	closed bool   // the peer left the transport
}

func newPeer(t *Transport, s *broker.Session, addr string) *peer {
	p := &peer{t: t, sess: s, addr: addr, log: s.Logger().With("transport", Name), thread: randomHex(6), acks: writer.NewAcks()}
	p.heardNow()
	return p
}

func (p *peer) heardNow() { p.heard.Store(time.Now().UnixNano()) }

// idleLeft is how long until the peer has been silent for the idle timeout.
func (p *peer) idleLeft() time.Duration {
	return time.Until(time.Unix(0, p.heard.Load()).Add(p.t.opts.IdleTimeout))
}

// startWriter stops the current writer, if any, and starts one for joined:
// it mails the welcome, then the session's messages after joined.After.
func (p *peer) startWriter(joined *broker.Joined) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if old := p.w; old != nil {
		old.Stop() // nothing of the old one is mailed after the new one starts
		p.w = nil
	}
	if p.closed {
		return
	}
	p.acks.Note(joined.After)
	p.w = writer.Start(p.sess, p.log, Name, func(w *writer.Gen) bool { return p.write(w, joined) }, p.leave)
}

// stopWriter stops the writer and waits for it; the session waits out its
// resume window.
func (p *peer) stopWriter() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if w := p.w; w != nil {
		w.Stop()
		p.w = nil
	}
}

// leave ends the peer's life on this transport. It does not end the session.
func (p *peer) leave() {
	p.t.forget(p)
}

// write mails for one attachment. It reports whether the session is over
// for this transport (ended, timed out, or carried elsewhere), as opposed to
// stopped for a newer writer or a shutdown.
func (p *peer) write(w *writer.Gen, joined *broker.Joined) (over bool) {
	var batch [][]byte
	if len(joined.Welcome) > 0 {
		batch = append(batch, joined.Welcome)
	}
	after := joined.After
	idle := time.NewTimer(p.idleLeft())
	defer idle.Stop()
	var flush *time.Timer
	var due <-chan time.Time
	startBatch := func() {
		if flush == nil && len(batch) > 0 {
			flush = time.NewTimer(p.t.opts.BatchDelay)
			due = flush.C
		}
	}
	defer func() {
		if flush != nil {
			flush.Stop()
		}
	}()
	var out []uint64 // seqs mailed and not yet acknowledged, in order
	for {
		startBatch()
		acked := p.acks.Seq()
		for len(out) > 0 && out[0] <= acked {
			out = out[1:]
		}
		var ready <-chan struct{}
		if len(out) < p.t.window {
			frames, last, wait, err := w.Att.Pending(after)
			if errors.Is(err, broker.ErrSuperseded) {
				if !p.sess.Closed() {
					return true // another connection carries the session now
				}
				// The session ended: what it has left goes out now.
				return p.final(w, batch, after)
			}
			if err != nil {
				var pe *broker.Error
				if errors.As(err, &pe) {
					batch = append(batch, broker.ErrorFrame(pe))
				}
				p.mail(w, batch)
				return true
			}
			if len(frames) > 0 {
				// Seqless frames (a pong, say) come first; then the seq
				// ones, up to the window: the rest stays in the mailbox,
				// to be taken again after an ack.
				firstSeq := len(frames) - int(last-after)
				base := after
				for i, f := range frames {
					if i >= firstSeq {
						if len(out) >= p.t.window {
							break
						}
						after = base + uint64(i-firstSeq) + 1
						out = append(out, after)
					}
					batch = append(batch, f)
				}
				continue
			}
			ready = wait
		}
		// Else the window is full: an ack, the session's end (Gone) or the
		// idle timeout moves it.
		select {
		case <-ready:
		case <-p.acks.Wake():
		case <-due:
			flush, due = nil, nil
			if p.mail(w, batch) != nil {
				return !w.Stopped()
			}
			batch = nil
		case <-idle.C:
			if left := p.idleLeft(); left > 0 {
				idle.Reset(left)
				continue
			}
			p.log.Info("email peer silent too long", "idle_timeout", p.t.opts.IdleTimeout)
			p.sess.Close(broker.ReasonTimeout)
			return true
		case <-w.Att.Gone():
			if !p.sess.Closed() {
				return true
			}
			return p.final(w, batch, after)
		case <-w.Stopping():
			return false
		}
	}
}

// final mails what an ended session still had for its peer.
func (p *peer) final(w *writer.Gen, batch [][]byte, after uint64) bool {
	att := p.sess.Attach()
	defer att.Detach()
	for range 64 {
		frames, last, _, err := att.Pending(after)
		if err != nil || len(frames) == 0 {
			break
		}
		batch = append(batch, frames...)
		after = max(after, last)
	}
	p.mail(w, batch)
	return true
}

// mail sends frames to the peer, MaxEnvelopesPerMail a mail, each tried
// again with backoff until the resume window has passed; then the session
// ends as for a lost connection. It fails when the writer is stopped or the
// session is given up.
func (p *peer) mail(w *writer.Gen, frames [][]byte) error {
	for len(frames) > 0 {
		n := min(len(frames), MaxEnvelopesPerMail)
		p.n++
		id := fmt.Sprintf("sb.%s.%d@%s", p.thread, p.n, p.t.opts.domain())
		raw, err := BuildMail(Outgoing{From: p.t.opts.Address, To: p.addr, Room: p.sess.Room(), MessageID: id, Thread: p.first, Frames: frames[:n]})
		if err != nil {
			p.log.Error("building a mail", "error", err)
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.t.opts.ResumeWindow)
		err = p.t.submit.sendRetrying(ctx, p.t.m, p.t.opts.Address, p.addr, raw, w.Stopping())
		cancel()
		if errors.Is(err, errStopped) {
			return err
		}
		if err != nil {
			p.log.Warn("mail to the peer could not be sent within the resume window: the session ends", "error", err, "resume_window", p.t.opts.ResumeWindow)
			p.sess.Close(broker.ReasonTimeout)
			return err
		}
		if p.first == "" {
			p.first = id
		}
		frames = frames[n:]
	}
	return nil
}
