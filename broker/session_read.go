// This file owns the way out of a session's mailbox to the receiving
// transport: Attachment.Pending (or Take with OnPending) hands out the
// frames after a seq, from the session's tail or else from the Store, and
// Ack forgets what the peer has processed. The envelope's path through
// the core ends here.

package broker

import (
	"context"
	"time"
)

// maxBatch is the most frames one Pending call hands out.
const maxBatch = 256

// Pending returns the frames to write after seq after: seqless frames first,
// then mailbox messages with seq > after, up to a batch, marking them
// written (the last last-after frames are the numbered ones). When there
// are none it returns a channel that is closed when there may be. It fails
// with ErrSuperseded once a newer connection has attached, with an *Error
// of CodeSessionExpired when after reaches back past what the mailbox
// forgot, and with ErrSessionClosed once the session has ended and
// everything is handed out. It is the one way a transport reads a session
// (Example_readLoop); Take and OnPending are the same read for a writer
// woken by a poller rather than a goroutine. A request that holds no
// connection, such as a poll of an ended session, attaches for the read.
func (a *Attachment) Pending(after uint64) (frames [][]byte, last uint64, wait <-chan struct{}, err error) {
	s := a.s
	s.mu.Lock()
	current := s.conn == a
	s.mu.Unlock()
	if !current {
		return nil, after, nil, ErrSuperseded
	}
	return s.pending(after)
}

// Take is Attachment.Pending without the channel to wait on, for a transport
// that waits with OnPending instead, with no goroutine per idle connection
// (the WebSocket transport's readiness poller): it fails with ErrSuperseded
// once a newer connection has attached.
func (a *Attachment) Take(after uint64) (frames [][]byte, last uint64, err error) {
	s := a.s
	s.mu.Lock()
	if s.conn != a {
		s.mu.Unlock()
		return nil, after, ErrSuperseded
	}
	return s.takeUnlock(after)
}

// OnPending calls fn, once, as soon as Take(after) would give frames or the
// session has ended: at once if it would now, else when that happens. A
// superseded attachment's fn is never kept. fn may be called with the
// session's lock held: it must not block or call the session. With it a
// transport needs no goroutine per idle connection.
func (a *Attachment) OnPending(after uint64, fn func()) {
	s := a.s
	s.mu.Lock()
	if s.conn != a {
		s.mu.Unlock()
		return
	}
	now := s.readyLocked(after)
	if !now {
		s.ready = fn
	}
	s.mu.Unlock()
	if now {
		fn()
	}
}

// Receive waits until there are frames after seq after, then returns them as
// Attachment.Pending does, whatever connection is attached; it returns early
// with no frames when ctx ends (an ended ctx: whatever is there now). It is
// for tests and tools that read a session as a client would; a transport
// reads with its Attachment.
func (s *Session) Receive(ctx context.Context, after uint64) ([][]byte, uint64, error) {
	for {
		frames, last, wait, err := s.pending(after)
		if err != nil || wait == nil {
			return frames, last, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, after, nil
		}
	}
}

// pending is Attachment.Pending for whatever connection is attached.
func (s *Session) pending(after uint64) (frames [][]byte, last uint64, wait <-chan struct{}, err error) {
	for {
		s.mu.Lock()
		wakes := s.wakes
		frames, last, err = s.takeUnlock(after)
		if len(frames) > 0 || err != nil {
			return frames, last, nil, err
		}
		s.mu.Lock()
		if s.wakes != wakes {
			// Something came while the lock was let go, and woke no one
			// this read would have heard: look again.
			s.mu.Unlock()
			continue
		}
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		wait = s.notify
		s.mu.Unlock()
		return nil, after, wait, nil
	}
}

// readyLocked reports whether a read after seq after would give frames,
// or the session's end.
func (s *Session) readyLocked(after uint64) bool {
	return s.closed || len(s.direct) > 0 || s.last > after
}

// takeUnlock hands out the frames after seq after, as Pending does without
// the channel, and lets go of the session's lock, which the caller holds:
// the seqless frames, then the messages from the tail when it holds all
// that the read needs, or else from the store. It marks what it hands out
// written in the store only every so often, often enough that the store's
// bound forgets what was written rather than take the session for a slow
// consumer (see Delivery.Max).
func (s *Session) takeUnlock(after uint64) ([][]byte, uint64, error) {
	frames := s.direct
	s.direct, s.directBytes = nil, 0
	ended := s.closed
	if after >= s.last {
		s.mu.Unlock()
		if len(frames) == 0 && ended {
			return nil, after, ErrSessionClosed
		}
		return frames, after, nil
	}
	live := s.tail.live()
	n := len(live)
	if n == 0 || live[0].seq > after+1 || live[n-1].seq != s.last {
		s.mu.Unlock()
		return s.takeStored(after, frames, ended)
	}
	es := live[after+1-live[0].seq:]
	es = es[:min(len(es), maxBatch)]
	if frames == nil {
		frames = make([][]byte, 0, len(es))
	}
	now := time.Now()
	for _, e := range es {
		frames = append(frames, e.data)
		s.b.m.delivered(time.Duration(int64(now.Sub(epoch)) - e.at))
	}
	last := es[len(es)-1].seq
	s.handed = max(s.handed, last)
	mark := last-s.marked >= uint64(max(s.b.opts.MailboxMessages/4, 1))
	if mark {
		s.marked = last
	}
	s.mu.Unlock()
	if mark {
		if err := s.b.store.Written(s.b.opCtx(), s.id, last); err != nil {
			s.logger().Warn("marking messages written in the store", "error", err)
		}
	}
	return frames, last, nil
}

// takeStored reads what the tail does not hold from the store; direct are
// the seqless frames taken already, ended whether the session had ended.
func (s *Session) takeStored(after uint64, direct [][]byte, ended bool) ([][]byte, uint64, error) {
	stored, err := s.b.store.Take(s.b.opCtx(), s.id, after, maxBatch, nil)
	if err != nil {
		if len(direct) > 0 {
			return direct, after, nil // the store can wait; these cannot
		}
		return nil, after, err
	}
	frames, last := direct, after
	for _, m := range stored {
		frames = append(frames, frame{body: m.Body}.withSeq(m.Seq))
		last = m.Seq
	}
	if len(frames) == 0 && ended {
		return nil, after, ErrSessionClosed
	}
	s.mu.Lock()
	s.handed = max(s.handed, last)
	s.mu.Unlock()
	return frames, last, nil
}

// Ack forgets everything up to seq: the peer has processed it.
func (s *Session) Ack(seq uint64) error {
	ok, err := s.box.ack(s.b.opCtx(), seq)
	if err != nil {
		return err
	}
	s.mu.Lock()
	live, i := s.tail.live(), 0
	for i < len(live) && live[i].seq <= seq {
		i++
	}
	s.trimTailLocked(i)
	s.mu.Unlock()
	if !ok {
		return Errorf(CodeBadRequest, "ack of seq %d, which was never sent", seq)
	}
	return nil
}

// LastSeq is the last seq given to a message for this session.
func (s *Session) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
