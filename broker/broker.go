package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Broker is the signaling core: rooms, sessions and routing. Transports hand
// it what peers send and take from it what peers receive. It is safe for
// concurrent use; create it with New and end it with Close.
type Broker struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	bp   Backplane
	// store holds every session's mailbox: Options.Store, or a MemoryStore
	// of this node's own; shared says it is Options.Store, which every
	// node of the cluster reaches (a session may then move between nodes,
	// and a message for a peer on another node goes into the store).
	store  Store
	shared bool

	// ctx ends when the broker closes; every store and backplane call is
	// made within it (see opCtx), and wg counts the goroutines the broker
	// started, which Close waits for.
	ctx    context.Context
	cancel context.CancelFunc
	op     atomic.Pointer[opContext]
	opMu   sync.Mutex
	wg     sync.WaitGroup

	mu       sync.RWMutex
	rooms    map[string]*room
	sessions map[string]*Session // by secret
	count    int                 // live sessions on this node

	// heldMsgs and heldBytes count the messages held on this node for
	// absent peers, against Options.HeldMessages and HeldBytes.
	heldMsgs  atomic.Int64
	heldBytes atomic.Int64

	joins *joinLimiter
	seed  maphash.Seed // for hashing envelope ids

	closing     atomic.Bool
	unsubscribe func()
	adoptMu     sync.Mutex // one take-over at a time
	closeOnce   sync.Once
}

// room holds the sessions of one room on this node, and the messages waiting
// for peers who are not in it (the offline hold).
type room struct {
	id      string
	mu      sync.RWMutex
	peers   map[string]*Session
	held    map[string][]*held
	deleted bool // removed from the broker; a joiner must look again
}

// held is a message waiting, within the offline hold, for its receiver.
type held struct {
	f      frame
	sender *Session
	ref    string
	timer  *time.Timer
}

// size is what h counts against the bounds on held messages.
func (h *held) size() int { return len(h.f.body) }

// JoinRequest is what a peer asks for when it joins (the join envelope).
type JoinRequest struct {
	Room      string
	Peer      string // empty: the broker picks one
	Token     string
	Meta      json.RawMessage // a JSON object of at most 1 KiB, or nil
	Resume    *Resume         // resume this session instead of starting one
	Transport string          // name of the transport carrying the session
	// Client is the address the join came from, as ClientAddr gives it, for
	// the per-address join rate (Options.JoinRate). Transports without
	// addresses use a key of their own (the Redis one: "redis:" and the
	// reply channel). Empty: the join rate does not apply.
	Client string
	Linger time.Duration // how long the session outlives its connection; 0: the resume window
}

// Resume names the session a join resumes and the last seq its peer has.
type Resume struct {
	Session string `json:"session"`
	LastSeq uint64 `json:"last_seq"`
}

// Joined is the broker's answer to a join.
type Joined struct {
	Session *Session
	Welcome []byte // the welcome envelope's JSON (seq 1 on a new session, none on a resumed one)
	After   uint64 // the seq the peer already has: write what Attachment.Pending(After) gives, after Welcome
	Resumed bool
}

type joinPayload struct {
	Peer   string          `json:"peer"`
	Token  string          `json:"token"`
	Resume *Resume         `json:"resume"`
	Meta   json.RawMessage `json:"meta"`
}

// ParseJoin reads a join envelope into a JoinRequest for transport.
func ParseJoin(env *Envelope, transport string) (JoinRequest, error) {
	if env.Type != TypeJoin {
		return JoinRequest{}, &Error{Code: CodeBadRequest, Message: "the first envelope must be a join", Ref: env.ID}
	}
	var p joinPayload
	if len(env.Payload) > 0 && string(env.Payload) != "null" {
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return JoinRequest{}, &Error{Code: CodeBadRequest, Message: "join payload must be an object of peer, token, resume and meta", Ref: env.ID}
		}
	}
	return JoinRequest{Room: env.Room, Peer: p.Peer, Token: p.Token, Meta: p.Meta, Resume: p.Resume, Transport: transport}, nil
}

// New returns a broker with opts; it subscribes to the backplane at once.
func New(opts Options) *Broker {
	opts.init()
	b := &Broker{
		opts:     opts,
		log:      opts.Logger,
		rooms:    make(map[string]*room),
		sessions: make(map[string]*Session),
		bp:       opts.Backplane,
		joins:    newJoinLimiter(opts.JoinRate, opts.JoinBurst),
		seed:     maphash.MakeSeed(),
	}
	if b.bp == nil {
		b.bp = &MemoryBackplane{}
	}
	b.store, b.shared = opts.Store, opts.Store != nil
	if b.store == nil {
		b.store = &MemoryStore{}
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.m = newMetrics(opts.Registerer, b)
	b.unsubscribe = b.bp.Subscribe(opts.NodeID, b.remote)
	if b.shared {
		stop := make(chan struct{})
		go b.touchLoop(stop)
		unsub := b.unsubscribe
		b.unsubscribe = func() { close(stop); unsub() }
	}
	if len(opts.TokenSecret) == 0 {
		b.log.Warn("NO TOKEN SECRET IS SET: anyone can join any room as any peer. Set token_secret (SWITCHBOARD_TOKEN_SECRET) in production.")
	}
	return b
}

// Options returns the broker's options, defaults applied.
func (b *Broker) Options() Options { return b.opts }

// Logger returns the broker's logger.
func (b *Broker) Logger() *slog.Logger { return b.log }

// Sessions returns the number of live sessions on this node.
func (b *Broker) Sessions() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.count
}

// Session finds a session by its secret: a live one, or one that ended
// lately (see Session.Closed), whose last messages may still be fetched.
//
// With a Store, a session that another node serves (or served, before it
// died) is taken over by this one.
func (b *Broker) Session(id string) (*Session, bool) {
	b.mu.RLock()
	s, ok := b.sessions[id]
	b.mu.RUnlock()
	if ok || !b.shared || b.closing.Load() {
		return s, ok
	}
	s, err := b.adopt(id)
	if err != nil {
		if !errors.Is(err, ErrNoSession) {
			b.log.Error("taking a session over from the store", "error", err)
		}
		return nil, false
	}
	return s, true
}

// LocalSession finds a session by its secret among those this node serves,
// live or ended lately, and never takes one over: for a transport that must
// tell whether this node or another carries a session.
func (b *Broker) LocalSession(id string) (*Session, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.sessions[id]
	return s, ok
}

// Join admits a peer to a room, or resumes its session. Refusals are *Error
// values with the protocol's codes.
func (b *Broker) Join(ctx context.Context, req JoinRequest) (_ *Joined, err error) {
	defer func() {
		if err != nil {
			b.m.refused(TypeJoin, AsError(err).Code) // logged by the transport, sparingly
		}
	}()
	if b.closing.Load() {
		return nil, &Error{Code: CodeShuttingDown, Message: "the broker is shutting down: join again (another node, or this one when it is back)", Err: ErrShutdown}
	}
	if !b.joins.allow(req.Client, time.Now()) {
		return nil, Errorf(CodeRateLimited, "too many joins from this address: at most %g a second, in bursts of %d; try again later", b.opts.JoinRate, b.opts.JoinBurst)
	}
	if !ValidID(req.Room) {
		return nil, Errorf(CodeBadRequest, "room must be 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	if req.Peer != "" && !ValidID(req.Peer) {
		return nil, Errorf(CodeBadRequest, "peer must be 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	tokenPeer, err := checkToken(b.opts.TokenSecret, req.Token, req.Room, req.Peer)
	if err != nil {
		return nil, err
	}
	if req.Peer == "" {
		req.Peer = tokenPeer
	}
	if req.Linger <= 0 {
		req.Linger = b.opts.ResumeWindow
	}
	if req.Resume != nil {
		return b.resume(req)
	}
	if len(req.Meta) > MaxMetaLength {
		return nil, Errorf(CodeBadRequest, "meta is larger than %d bytes", MaxMetaLength)
	}
	if len(req.Meta) > 0 && ((req.Meta[0] != '{' && string(req.Meta) != "null") || !json.Valid(req.Meta)) {
		return nil, Errorf(CodeBadRequest, "meta must be a JSON object")
	}
	if string(req.Meta) == "null" {
		req.Meta = nil
	}
	randomPeer := req.Peer == ""
	if randomPeer {
		req.Peer = "peer-" + randomID(5)
	}

	b.mu.Lock()
	if b.count >= b.opts.MaxSessions {
		b.mu.Unlock()
		return nil, Errorf(CodeRateLimited, "this node holds its most sessions (%d); try again later", b.opts.MaxSessions)
	}
	b.count++
	b.mu.Unlock()
	joined, err := b.admit(ctx, req)
	if err != nil {
		b.mu.Lock()
		b.count--
		b.mu.Unlock()
		return nil, err
	}
	return joined, nil
}

// admit creates the session of a new join in its room.
func (b *Broker) admit(ctx context.Context, req JoinRequest) (*Joined, error) {
	secret := randomID(16)
	s := &Session{
		b:         b,
		id:        secret,
		logID:     LogID(secret),
		peer:      req.Peer,
		transport: req.Transport,
		meta:      req.Meta,
		linger:    req.Linger,
		limiter:   newBucket(b.opts.Rate, b.opts.Burst),
	}
	r := b.lockRoom(req.Room, true)
	defer r.mu.Unlock()
	s.room = r
	members, err := b.bp.Members(ctx, req.Room)
	if err != nil {
		b.dropRoomIfEmptyLocked(r)
		return nil, err
	}
	if len(members) >= b.opts.MaxPeersPerRoom {
		b.dropRoomIfEmptyLocked(r)
		return nil, Errorf(CodeRoomFull, "room %s is full (%d peers)", req.Room, b.opts.MaxPeersPerRoom)
	}
	me := Member{Peer: s.peer, Meta: s.meta, Session: s.id, Node: b.opts.NodeID}
	if err := b.bp.Claim(ctx, req.Room, me); err != nil {
		b.dropRoomIfEmptyLocked(r)
		return nil, err
	}
	if err := b.store.Save(ctx, s.record(b.opts.NodeID, 0), b.storeTTL()); err != nil {
		_ = b.bp.Release(ctx, req.Room, me)
		b.dropRoomIfEmptyLocked(r)
		return nil, err
	}
	welcome := newFrame(b.welcome(s, members, false))
	_ = s.enqueue(welcome)
	s.knowPeers(members)
	// Until a connection attaches, the session waits as a dropped one does.
	s.mu.Lock()
	s.timer = time.AfterFunc(s.linger, func() { s.Close(ReasonTimeout) })
	s.mu.Unlock()
	for _, other := range r.peers {
		other.tellJoined(r.id, s.peer, s.meta)
	}
	r.peers[s.peer] = s
	b.flushHeldLocked(r, s.peer)
	b.mu.Lock()
	b.sessions[s.id] = s
	b.mu.Unlock()
	_ = b.bp.Publish(ctx, Event{Kind: EventJoined, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Meta: s.meta})
	b.m.sessionOpened(s.transport)
	s.logger().Info("peer joined")
	return &Joined{Session: s, Welcome: welcome.withSeq(1), After: 1}, nil
}

// resume hands an existing session to a new connection.
func (b *Broker) resume(req JoinRequest) (*Joined, error) {
	s, ok := b.Session(req.Resume.Session)
	if !ok || s.Closed() || s.room.id != req.Room || (req.Peer != "" && req.Peer != s.peer) {
		return nil, Errorf(CodeSessionExpired, "no session to resume in room %s: start a new one", req.Room)
	}
	last, dropped, err := b.store.Seqs(b.opCtx(), s.id)
	if err != nil {
		return nil, err
	}
	if req.Resume.LastSeq > last {
		return nil, Errorf(CodeBadRequest, "last_seq %d was never sent", req.Resume.LastSeq)
	}
	if req.Resume.LastSeq < dropped {
		s.Close(ReasonTimeout)
		return nil, Errorf(CodeSessionExpired, "messages after seq %d were forgotten: start a new session", req.Resume.LastSeq)
	}
	if err := s.Ack(req.Resume.LastSeq); err != nil {
		return nil, err
	}
	s.mu.Lock()
	previous := s.transport
	s.transport = req.Transport
	s.linger = req.Linger
	s.mu.Unlock()
	if previous != req.Transport {
		b.m.sessionClosed(previous)
		b.m.sessionOpened(req.Transport)
		// The store says which transport carries the session, for the
		// nodes that may be asked to take it over.
		if err := b.store.Save(b.opCtx(), s.record(b.opts.NodeID, 0), b.storeTTL()); err != nil {
			s.logger().Error("recording the session's new transport in the store", "error", err)
		}
	}
	members, err := b.bp.Members(context.Background(), s.room.id)
	if err != nil {
		return nil, err
	}
	welcome := b.welcome(s, members, true)
	s.logger().Info("session resumed", "last_seq", req.Resume.LastSeq)
	return &Joined{Session: s, Welcome: welcome.Encode(), After: req.Resume.LastSeq, Resumed: true}, nil
}

type peerInfo struct {
	Peer string          `json:"peer"`
	Meta json.RawMessage `json:"meta,omitempty"`
}

func (b *Broker) welcome(s *Session, members []Member, resumed bool) *Envelope {
	peers := make([]peerInfo, 0, len(members))
	for _, m := range members {
		if m.Peer != s.peer {
			peers = append(peers, peerInfo{m.Peer, m.Meta})
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Peer < peers[j].Peer })
	payload, _ := json.Marshal(struct {
		Peer    string     `json:"peer"`
		Session string     `json:"session"`
		Peers   []peerInfo `json:"peers"`
		Resumed bool       `json:"resumed"`
		icePayload
	}{s.peer, s.id, peers, resumed, b.icePayload(s.peer)})
	return &Envelope{Type: TypeWelcome, Room: s.room.id, Payload: payload}
}

func peerJoined(room, peer string, meta json.RawMessage) *Envelope {
	payload, _ := json.Marshal(peerInfo{peer, meta})
	return &Envelope{Type: TypePeerJoined, Room: room, Payload: payload}
}

func peerLeft(room, peer, reason string) *Envelope {
	payload, _ := json.Marshal(struct {
		Peer   string `json:"peer"`
		Reason string `json:"reason"`
	}{peer, reason})
	return &Envelope{Type: TypePeerLeft, Room: room, Payload: payload}
}

// lockRoom returns room id locked for writing, creating it if create is set;
// nil if it does not exist.
func (b *Broker) lockRoom(id string, create bool) *room {
	for {
		b.mu.RLock()
		r := b.rooms[id]
		b.mu.RUnlock()
		if r == nil {
			if !create {
				return nil
			}
			b.mu.Lock()
			if r = b.rooms[id]; r == nil {
				r = &room{id: id, peers: make(map[string]*Session), held: make(map[string][]*held)}
				b.rooms[id] = r
			}
			b.mu.Unlock()
		}
		r.mu.Lock()
		if !r.deleted {
			return r
		}
		r.mu.Unlock()
	}
}

// dropRoomIfEmptyLocked removes r from the broker when nothing is in it.
func (b *Broker) dropRoomIfEmptyLocked(r *room) {
	if len(r.peers) > 0 || len(r.held) > 0 {
		return
	}
	r.deleted = true
	b.mu.Lock()
	if b.rooms[r.id] == r {
		delete(b.rooms, r.id)
	}
	b.mu.Unlock()
}

// leave takes an ended session out of its room and tells the others. The
// peer id is free before they hear of it: whoever is told may take it at once.
func (b *Broker) leave(s *Session, reason string) {
	r := s.room
	ctx := context.Background()
	r.mu.Lock()
	if err := b.bp.Release(ctx, r.id, Member{Peer: s.peer, Session: s.id, Node: b.opts.NodeID}); err != nil {
		s.logger().Error("releasing peer id", "error", err)
	}
	if r.peers[s.peer] == s {
		delete(r.peers, s.peer)
		for _, other := range r.peers {
			other.tellLeft(r.id, s.peer, reason)
		}
	}
	b.dropRoomIfEmptyLocked(r)
	r.mu.Unlock()
	_ = b.bp.Publish(ctx, Event{Kind: EventLeft, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Reason: reason})
	b.mu.Lock()
	b.count--
	b.mu.Unlock()
	// A closed session answers resumes with session-expired for a while, then is forgotten.
	time.AfterFunc(b.opts.ResumeWindow, func() {
		b.mu.Lock()
		if b.sessions[s.id] == s {
			delete(b.sessions, s.id)
		}
		b.mu.Unlock()
		if err := b.store.Delete(b.opCtx(), s.id); err != nil {
			s.logger().Error("forgetting the session in the store", "error", err)
		}
	})
	b.m.sessionClosed(s.Transport())
}

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
	if at, ok := s.seen[h]; ok && t-at < window {
		return true
	}
	if at, ok := s.seenOld[h]; ok && t-at < window {
		return true
	}
	if s.seen == nil || len(s.seen) >= maxSeen/2 || t-s.seenSince >= window {
		s.seenOld, s.seen, s.seenSince = s.seen, make(map[uint64]int64), t
	}
	s.seen[h] = t
	return false
}

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

// hold keeps f for peer to, who is not in room r, for the offline hold,
// within the bounds on what one session and this node hold: past them, the
// sender is answered peer-unavailable at once.
func (b *Broker) hold(r *room, to string, f frame, sender *Session, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.peers[to]; t != nil && t.enqueue(f) == nil {
		return nil // it joined meanwhile
	}
	h := &held{f: f, sender: sender, ref: ref}
	if err := b.countHeld(h, to); err != nil {
		return err
	}
	r.held[to] = append(r.held[to], h)
	h.timer = time.AfterFunc(b.opts.OfflineHold, func() { b.expire(r, to, h) })
	return nil
}

// countHeld counts h against the bounds on held messages, or says why it
// cannot be held.
func (b *Broker) countHeld(h *held, to string) error {
	n := h.size()
	if s := h.sender; s != nil {
		s.mu.Lock()
		over := s.heldMsgs+1 > b.opts.MailboxMessages || s.heldBytes+n > b.opts.MailboxBytes
		if !over {
			s.heldMsgs++
			s.heldBytes += n
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
		s.heldMsgs--
		s.heldBytes -= h.size()
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

// flushHeldLocked delivers what waited for peer, who just joined, on this
// node or another.
func (b *Broker) flushHeldLocked(r *room, peer string) {
	q := r.held[peer]
	if len(q) == 0 {
		return
	}
	delete(r.held, peer)
	t := r.peers[peer]
	var remote Member
	if t == nil {
		remote = Member{Peer: peer}
		if b.shared {
			members, err := b.bp.Members(context.Background(), r.id)
			if err != nil {
				b.log.Error("looking up a peer for its held messages", "room", r.id, "error", err)
			}
			for _, m := range members {
				if m.Peer == peer {
					remote = m
				}
			}
		}
	}
	for _, h := range q {
		h.timer.Stop()
		b.uncountHeld(h)
		if t != nil {
			_ = t.enqueue(h.f)
		} else if err := b.deliverRemote(context.Background(), r.id, "", remote, h.f); err != nil {
			b.log.Error("delivering a held message", "room", r.id, "error", err)
			if h.sender != nil {
				go h.sender.Refuse(h.f.typ, &Error{Code: AsError(err).Code, Message: "the message waited for " + peer + " but could not be delivered: " + AsError(err).Message, Ref: h.ref})
			}
		}
	}
}

// remote acts on an event from another node.
func (b *Broker) remote(ev Event) {
	if ev.Kind == EventResync {
		go b.resync()
		return
	}
	r := b.lockRoom(ev.Room, false)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	switch ev.Kind {
	case EventRelay:
		f := frame{typ: ev.Type, body: ev.Body}
		if ev.To != "" {
			if t := r.peers[ev.To]; t != nil {
				_ = t.enqueue(f)
			}
			return
		}
		for _, s := range r.peers {
			if s.peer != ev.Peer {
				_ = s.enqueue(f)
			}
		}
	case EventJoined:
		for _, s := range r.peers {
			s.tellJoined(r.id, ev.Peer, ev.Meta)
		}
		b.flushHeldLocked(r, ev.Peer)
	case EventLeft:
		for _, s := range r.peers {
			s.tellLeft(r.id, ev.Peer, ev.Reason)
		}
	case EventWake:
		if s := r.peers[ev.To]; s != nil && s.id == ev.Session {
			if ev.Body != nil {
				s.heardFrame(ev.Seq, frame{typ: ev.Type, body: ev.Body})
			} else {
				s.heard(ev.Seq)
			}
		}
	case EventSlow:
		if s := r.peers[ev.To]; s != nil && s.id == ev.Session {
			s.slow()
		}
	case EventMoved:
		if s := r.peers[ev.Peer]; s != nil && s.id == ev.Session {
			delete(r.peers, ev.Peer)
			go b.drop(s)
		}
	}
	b.dropRoomIfEmptyLocked(r)
}

// resync looks at the store again for every session of this node: events
// that told of new messages may have been lost while the backplane was cut off.
func (b *Broker) resync() {
	if !b.shared {
		return
	}
	b.mu.RLock()
	all := make([]*Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.RUnlock()
	for _, s := range all {
		ctx, cancel := context.WithTimeout(context.Background(), storeOp)
		last, _, err := b.store.Seqs(ctx, s.id)
		cancel()
		if err == nil {
			s.heard(last)
		}
	}
	b.log.Info("looked at the store again after the backplane was cut off", "sessions", len(all))
}

// adopt takes over, from the store, a session that another node served.
func (b *Broker) adopt(id string) (*Session, error) {
	b.adoptMu.Lock()
	defer b.adoptMu.Unlock()
	b.mu.RLock()
	s, ok := b.sessions[id]
	b.mu.RUnlock()
	if ok {
		return s, nil
	}
	st := b.store
	ctx, cancel := context.WithTimeout(context.Background(), storeOp)
	defer cancel()
	rec, err := st.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	last, _, err := st.Seqs(ctx, id)
	if err != nil {
		return nil, err
	}
	s = &Session{
		b:         b,
		id:        id,
		logID:     LogID(id),
		peer:      rec.Peer,
		meta:      rec.Meta,
		transport: rec.Transport,
		linger:    b.opts.ResumeWindow,
		limiter:   newBucket(b.opts.Rate, b.opts.Burst),
		last:      last,
	}
	r := b.lockRoom(rec.Room, true)
	defer r.mu.Unlock()
	s.room = r
	before, err := b.bp.Members(ctx, r.id)
	if err != nil {
		b.dropRoomIfEmptyLocked(r)
		return nil, err
	}
	// A session whose node died long enough ago was reported gone; taken
	// over now, it is announced again.
	wasGone := !slices.ContainsFunc(before, func(m Member) bool { return m.Session == id })
	me := Member{Peer: s.peer, Meta: s.meta, Session: id, Node: b.opts.NodeID}
	if err := b.bp.Claim(ctx, r.id, me); err != nil {
		b.dropRoomIfEmptyLocked(r)
		return nil, err // another session holds the id now: this one is over
	}
	rec.Node = b.opts.NodeID
	if err := st.Save(ctx, rec, b.storeTTL()); err != nil {
		return nil, err
	}
	members, err := b.bp.Members(ctx, r.id)
	if err != nil {
		return nil, err
	}
	s.knowPeers(members)
	r.peers[s.peer] = s
	b.flushHeldLocked(r, s.peer)
	s.timer = time.AfterFunc(s.linger, func() { s.Close(ReasonTimeout) })
	b.mu.Lock()
	b.sessions[id] = s
	b.count++
	b.mu.Unlock()
	// A message stored for the session while it was being taken over was
	// told of to its old node; from now on deliverRemote tells this one.
	if last, _, err := st.Seqs(ctx, id); err == nil {
		s.heard(last)
	}
	_ = b.bp.Publish(ctx, Event{Kind: EventMoved, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Session: id})
	if wasGone {
		for _, other := range r.peers {
			if other != s {
				other.tellJoined(r.id, s.peer, s.meta)
			}
		}
		_ = b.bp.Publish(ctx, Event{Kind: EventJoined, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Meta: s.meta})
	}
	b.m.sessionOpened(rec.Transport)
	s.logger().Info("session taken over", "from", rec.Node)
	return s, nil
}

// wakeElsewhere tells the node that took s over that the store holds
// messages for it up to seq.
func (b *Broker) wakeElsewhere(s *Session, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOp)
	defer cancel()
	_ = b.bp.Publish(ctx, Event{Kind: EventWake, Node: b.opts.NodeID, Room: s.room.id, To: s.peer, Session: s.id, Seq: seq})
}

// drop forgets a session that another node took over, without telling
// anyone it left: its connection here is closed, and the session goes on
// there.
func (b *Broker) drop(s *Session) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.moved = true, true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.releaseConnLocked()
	s.wakeLocked()
	transport, last, depth := s.transport, s.last, len(s.tail)
	s.mu.Unlock()
	b.m.queued(-depth)
	b.mu.Lock()
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.count--
	b.mu.Unlock()
	// Until this node heard of the move, it took the session for its own
	// and told nobody else of what it stored for it.
	b.wakeElsewhere(s, last)
	b.m.sessionClosed(transport)
	s.logger().Info("session moved to another node")
}

// Drain stops admitting joins: from now on Join answers that the broker is
// shutting down. Sessions go on until Close.
func (b *Broker) Drain() { b.closing.Store(true) }

// Close stops admitting joins and ends every session on this node with
// reason; the others in their rooms see peer-left.
func (b *Broker) Close(reason string) {
	b.closing.Store(true)
	b.mu.RLock()
	all := make([]*Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.RUnlock()
	for _, s := range all {
		if b.shared {
			b.drop(s) // it may resume on another node
		} else {
			s.Close(reason)
		}
	}
	b.closeOnce.Do(b.unsubscribe)
	b.wg.Wait()
	b.cancel()
}

// spawn runs fn in a goroutine of its own, which Close waits for.
func (b *Broker) spawn(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// opContext is a context that many store and backplane calls share.
type opContext struct {
	ctx      context.Context
	cancel   context.CancelFunc // called by nobody: it lapses at its deadline, or with the broker's
	deadline time.Time
}

// opCtx returns the context of one store or backplane call: it ends when
// the broker closes, and has a deadline storeOp to 5/4 storeOp from now.
// Calls made close together share one, so that a call allocates nothing
// for it; each lapses by itself at its deadline.
func (b *Broker) opCtx() context.Context {
	if c := b.op.Load(); c != nil && time.Until(c.deadline) >= storeOp {
		return c.ctx
	}
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if c := b.op.Load(); c != nil && time.Until(c.deadline) >= storeOp {
		return c.ctx
	}
	ctx, cancel := context.WithTimeout(b.ctx, storeOp*5/4)
	d, _ := ctx.Deadline()
	b.op.Store(&opContext{ctx: ctx, cancel: cancel, deadline: d})
	return ctx
}

// randomID returns n random bytes, hex-encoded.
func randomID(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
