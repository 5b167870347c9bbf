package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Reasons a session ends, as other peers see them in peer-left.
const (
	ReasonLeave   = "leave"
	ReasonTimeout = "timeout"
	ReasonKicked  = "kicked"
)

// maxBatch is the most frames one Pending call hands out.
const maxBatch = 256

// Session is one peer's membership of a room: its identity, its mailbox and
// the connection currently carrying it. A session outlives its connections:
// when one drops, the session waits out its resume window for the next.
// Session is safe for concurrent use.
type Session struct {
	b         *Broker
	id        string // the secret: resume credential and long-poll address
	logID     string // what logs show of the session (see ID)
	peer      string
	room      *room
	transport string
	meta      json.RawMessage

	// handling is held while one envelope the peer sent is checked against
	// the dedup window and relayed. A cut connection may still be handing
	// over what it read while the resumed one resends the same envelopes;
	// one at a time, each is relayed once, in the order sent.
	handling sync.Mutex

	mu      sync.Mutex
	notify  chan struct{}
	ready   func() // OnPending's callback, called once
	closed  bool
	moved   bool   // closed because another node took the session over
	wordDue bool   // ending: its last word is on its way to the store
	wakes   uint32 // counts wakeLocked calls, for a read to tell it missed none
	conn    *Attachment
	linger  time.Duration
	timer   *time.Timer
	limiter bucket
	known   []string // the other peers this session was told of

	// seen and seenOld are the hashes of envelope ids seen lately, with
	// when (unix ns), for dropping retries: two generations, the newer
	// started at seenSince (see seenLocked).
	seen      map[uint64]int64
	seenOld   map[uint64]int64
	seenSince int64

	// heldMsgs and heldBytes count this session's messages held for absent
	// peers (the offline hold), bounded as its mailbox is.
	heldMsgs  int
	heldBytes int

	// refusals are logged at most once per refusalLogEvery: the next time
	// one may be, and how many were held back since.
	refusalNext time.Time
	refusalHeld int

	// The session's mailbox is in the broker's Store (the node's own
	// MemoryStore, or one the cluster shares); the session keeps this
	// node's view of it. last is the last seq this node has heard the
	// store give; tail is a copy of the latest messages heard of (stored
	// by this node, or told of with their wake by another), contiguous
	// seqs, tailBytes their size, which reads hand out without asking the
	// store when they are all a read needs; handed is the last seq handed
	// to a connection, marked the last one marked written in the store.
	last      uint64
	handed    uint64
	marked    uint64
	tail      []entry
	tailBytes int
	// direct are frames without seq (pong), not kept for resume, waiting
	// to be written; they count against the mailbox's bound.
	direct      [][]byte
	directBytes int
}

// Attachment is one live connection's hold on a session. A newer connection
// of the same session supersedes it: Gone closes.
type Attachment struct {
	s      *Session
	gone   chan struct{}
	onGone func() // called when superseded or when the session ends
	done   bool   // guarded by s.mu
}

// Peer is the session's peer id.
func (s *Session) Peer() string { return s.peer }

// Room is the session's room id.
func (s *Session) Room() string { return s.room.id }

// ID is the session's name in logs: 12 hex digits of a hash of its secret,
// the same on every node of a cluster. It is not a credential, and tells
// nothing of the secret: transports log it rather than any part of the secret.
func (s *Session) ID() string { return s.logID }

// Secret is the session secret: the resume credential and the long-poll
// address. Never log it, nor any part of it.
func (s *Session) Secret() string { return s.id }

// LogID is the name in logs (Session.ID) of the session whose secret is
// secret: for a transport that logs a secret it was shown.
func LogID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}

// Transport is the name of the transport that last carried the session.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport
}

// LogValue keeps the secret out of logs: the session is shown by its ID.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("room", s.room.id), slog.String("peer", s.peer),
		slog.String("id", s.logID))
}

// Attach marks a new live connection for the session and supersedes the
// previous one. The caller must Detach it when the connection ends.
func (s *Session) Attach() *Attachment { return s.AttachFunc(nil) }

// AttachFunc is Attach with a function that is called, once, when the
// attachment is superseded. It is called with the session's lock held: it
// must not block or call the session.
func (s *Session) AttachFunc(onGone func()) *Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseConnLocked()
	a := &Attachment{s: s, gone: make(chan struct{}), onGone: onGone}
	if s.closed {
		// An ended session's Gone is closed from the start, but what it still
		// has for its peer can be read through the attachment until Pending
		// says ErrSessionClosed; not on a node the session moved away from.
		a.done = true
		close(a.gone)
		if !s.moved {
			s.conn = a
		}
		return a
	}
	s.conn = a
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	return a
}

// Gone is closed when the attachment is superseded or the session ends.
func (a *Attachment) Gone() <-chan struct{} { return a.gone }

// Detach ends the attachment. If it was the session's live connection, the
// session waits out its resume window for another, then ends with timeout.
func (a *Attachment) Detach() {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != a {
		return
	}
	if !a.done {
		a.done = true
		close(a.gone)
	}
	s.conn = nil
	s.ready = nil
	if !s.closed {
		s.timer = time.AfterFunc(s.linger, func() { s.Close(ReasonTimeout) })
	}
}

func (s *Session) releaseConnLocked() {
	if a := s.conn; a != nil && !a.done {
		a.done = true
		close(a.gone)
		if a.onGone != nil {
			a.onGone()
		}
	}
	s.conn = nil
	s.ready = nil
}

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
	n := len(s.tail)
	if n == 0 || s.tail[0].seq > after+1 || s.tail[n-1].seq != s.last {
		s.mu.Unlock()
		return s.takeStored(after, frames, ended)
	}
	es := s.tail[after+1-s.tail[0].seq:]
	es = es[:min(len(es), maxBatch)]
	now := time.Now()
	for _, e := range es {
		frames = append(frames, e.data)
		s.b.m.delivered(e.typ, now.Sub(e.at))
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
	ok, err := s.b.store.Ack(s.b.opCtx(), s.id, seq)
	if err != nil {
		return err
	}
	s.mu.Lock()
	i := 0
	for i < len(s.tail) && s.tail[i].seq <= seq {
		s.tailBytes -= len(s.tail[i].data)
		i++
	}
	s.trimTailLocked(i)
	s.mu.Unlock()
	if !ok {
		return Errorf(CodeBadRequest, "ack of seq %d, which was never sent", seq)
	}
	return nil
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

// LastSeq is the last seq given to a message for this session.
func (s *Session) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
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

// Closed reports whether the session has ended.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
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
	if s.heardFrame(seq, f) {
		// Stored after the move: the session's node must hear of it.
		s.b.wakeElsewhere(s, seq)
	}
	if slow {
		s.slow()
	}
	return nil
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

// record is what the store keeps of the session, served by node.
func (s *Session) record(node string, last uint64) SessionRecord {
	return SessionRecord{ID: s.id, Room: s.room.id, Peer: s.peer, Meta: s.meta, Node: node, Transport: s.Transport(), Last: last}
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

// Close ends the session for reason (ReasonLeave, ReasonTimeout or
// ReasonKicked): the others in the room see peer-left. Closing twice is harmless.
func (s *Session) Close(reason string) { s.end(nil, reason) }

// end closes the session; lastWord, if not nil, is the final error the peer
// is told: past the bound, stored before the session counts as closed, so
// that whoever sees it closed finds the word in its stream.
func (s *Session) end(lastWord *Error, reason string) {
	s.mu.Lock()
	if s.closed || s.wordDue {
		s.mu.Unlock()
		return
	}
	if lastWord != nil {
		s.wordDue = true // nothing else goes in after the last word
		s.mu.Unlock()
		if err := s.store(newFrame(errorEnvelope(lastWord)), 0, 0); err != nil {
			s.mu.Lock()
			s.direct = append(s.direct, ErrorFrame(lastWord))
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.wordDue = false
	}
	s.closed = true
	depth := len(s.tail)
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.wakeLocked()
	s.mu.Unlock()
	s.b.m.queued(-depth)
	if lastWord != nil {
		s.logger().Warn("session ended", "code", lastWord.Code, "reason", reason)
	} else {
		s.logger().Info("session ended", "reason", reason)
	}
	s.b.leave(s, reason)
}

// Logger returns the session's logger, which names its room, peer, session
// prefix and transport.
func (s *Session) Logger() *slog.Logger { return s.logger() }

// logger is made when something is logged, rather than kept: an idle
// session should hold as little as it can.
func (s *Session) logger() *slog.Logger {
	return s.b.log.With("session", s, "transport", s.Transport())
}

// tellJoined tells the session that peer entered its room, unless it knows
// already (its welcome listed the peer before another node's news of it came).
// The caller holds the room's lock.
func (s *Session) tellJoined(room, peer string, meta []byte) {
	s.mu.Lock()
	// A late event may tell of this very session, taken over from the
	// node that admitted it.
	if peer == s.peer || slices.Contains(s.known, peer) {
		s.mu.Unlock()
		return
	}
	s.known = append(s.known, peer)
	s.mu.Unlock()
	_ = s.enqueue(newFrame(peerJoined(room, peer, meta)))
}

// tellLeft tells the session that peer left its room, if it was told the
// peer was there. The caller holds the room's lock.
func (s *Session) tellLeft(room, peer, reason string) {
	s.mu.Lock()
	i := slices.Index(s.known, peer)
	if i < 0 {
		s.mu.Unlock()
		return
	}
	s.known = slices.Delete(s.known, i, i+1)
	s.mu.Unlock()
	_ = s.enqueue(newFrame(peerLeft(room, peer, reason)))
}

// knowPeers records the peers a welcome listed.
func (s *Session) knowPeers(members []Member) {
	s.known = s.known[:0]
	for _, m := range members {
		if m.Peer != s.peer {
			s.known = append(s.known, m.Peer)
		}
	}
}

// entry is one message in a session's tail.
type entry struct {
	seq  uint64
	typ  string
	data []byte // the envelope's JSON, seq included
	at   time.Time
}
