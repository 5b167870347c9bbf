// This file owns the Session: a peer's membership of a room, its identity,
// the connection attached to it (Attach, Detach), and its end (Close). What
// the peer sends comes in through session_in.go.

package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	// cold is what a session needs only once its peer sends envelopes with
	// ids, is refused, or has messages held: made on first use (coldLocked),
	// so that an idle session holds less.
	cold *sessionCold

	// The session's mailbox is in the broker's Store (the node's own
	// MemoryStore, or one the cluster shares); the session keeps this
	// node's view of it. last is the last seq this node has heard the
	// store give; tail is a copy of the latest messages heard of (stored
	// by this node, or told of with their wake by another), contiguous
	// seqs, which reads hand out without asking the
	// store when they are all a read needs; handed is the last seq handed
	// to a connection, marked the last one marked written in the store.
	last   uint64
	handed uint64
	marked uint64
	tail   tail
	box    sessionBox // the way into the mailbox
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
		s.timer = s.b.afterFunc(s.linger, func() { s.Close(ReasonTimeout) })
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

// Closed reports whether the session has ended.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// record is what the store keeps of the session, served by node.
func (s *Session) record(node string, last uint64) SessionRecord {
	return SessionRecord{ID: s.id, Room: s.room.id, Peer: s.peer, Meta: s.meta, Node: node, Transport: s.Transport(), Last: last}
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
	depth := len(s.tail.live())
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
// already (its welcome listed the peer before another node's news of it
// came): f, a peer-joined, is queued on the room. The caller holds the
// room's lock, and sends the room's queue once it has let it go.
func (s *Session) tellJoined(r *room, peer string, f frame) {
	s.mu.Lock()
	// A late event may tell of this very session, taken over from the
	// node that admitted it.
	if peer == s.peer || slices.Contains(s.known, peer) {
		s.mu.Unlock()
		return
	}
	s.known = append(s.known, peer)
	s.mu.Unlock()
	r.noteLocked(s, f)
}

// tellLeft tells the session that peer left its room, if it was told the
// peer was there: f, a peer-left, is queued on the room. The caller holds
// the room's lock, and sends the room's queue once it has let it go.
func (s *Session) tellLeft(r *room, peer string, f frame) {
	s.mu.Lock()
	i := slices.Index(s.known, peer)
	if i < 0 {
		s.mu.Unlock()
		return
	}
	s.known = slices.Delete(s.known, i, i+1)
	s.mu.Unlock()
	r.noteLocked(s, f)
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

// sessionCold is the part of a Session that an idle one does without. The
// session's lock guards it.
type sessionCold struct {
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
}

// coldLocked returns the session's cold part, made on first use.
func (s *Session) coldLocked() *sessionCold {
	if s.cold == nil {
		s.cold = new(sessionCold)
	}
	return s.cold
}
