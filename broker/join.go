// This file owns how a peer comes into a room and goes out of it: Join
// (a new session, admit, or a resumed one, resume), the welcome, the room
// and its locking, and leave when a session ends. Next on an envelope's
// path: session.go, the Session a join hands the transport.

package broker

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"
)

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
		return b.resume(ctx, req)
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
	ctx, cancel := context.WithTimeout(ctx, storeOp)
	defer cancel()
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
	// The session's record is in the store before anyone can know of it.
	rec := SessionRecord{ID: s.id, Room: req.Room, Peer: s.peer, Meta: s.meta, Node: b.opts.NodeID, Transport: s.transport}
	if err := b.store.Save(ctx, rec, b.storeTTL()); err != nil {
		return nil, err
	}
	s.box = boxOf(b.store, s.id)
	joined, err := b.enter(ctx, s, req.Room)
	if err != nil {
		if err := b.store.Delete(b.opCtx(), s.id); err != nil {
			b.log.Error("forgetting a refused session in the store", "error", err)
		}
		return nil, err
	}
	b.mu.Lock()
	b.sessions[s.id] = s
	b.mu.Unlock()
	_ = b.bp.Publish(ctx, Event{Kind: EventJoined, Node: b.opts.NodeID, Room: req.Room, Peer: s.peer, Meta: s.meta})
	b.m.sessionOpened(s.transport)
	s.logger().Info("peer joined")
	return joined, nil
}

// enter puts the new session s in its room: it claims its peer id, stores
// its welcome, and queues word of it for the others in the room.
//
// The room's lock is held across Members, Claim and the welcome's push,
// three round trips in a cluster, because the order needs them there:
//   - What the welcome lists and what the session is told later must add
//     up. An event of another node about the room (a peer joined) waits for
//     the lock; were it taken while the lock was let go between Members and
//     the session's entry in the room, the session would not be in the room
//     to be told, nor would its welcome list the peer
//     (TestJoinSeesPeerThatJoinedMeanwhile shows it).
//   - The welcome is seq 1 (Joined.After): it is stored before the session
//     is in the room, where anyone may send to it.
//
// Nothing else goes over the network under the lock: word of the session
// to the others, and held messages, are stored once it is let go.
func (b *Broker) enter(ctx context.Context, s *Session, id string) (*Joined, error) {
	r := b.lockRoom(id, true)
	s.room = r
	members, err := b.bp.Members(ctx, id)
	if err == nil && len(members) >= b.opts.MaxPeersPerRoom {
		err = Errorf(CodeRoomFull, "room %s is full (%d peers)", id, b.opts.MaxPeersPerRoom)
	}
	if err == nil {
		err = b.bp.Claim(ctx, id, Member{Peer: s.peer, Meta: s.meta, Session: s.id, Node: b.opts.NodeID})
	}
	if err != nil {
		b.dropRoomIfEmptyLocked(r)
		r.mu.Unlock()
		return nil, err
	}
	welcome := newFrame(b.welcome(s, members, false))
	if err := s.store(welcome, 0, 0); err != nil {
		_ = b.bp.Release(ctx, id, Member{Peer: s.peer, Session: s.id, Node: b.opts.NodeID})
		b.dropRoomIfEmptyLocked(r)
		r.mu.Unlock()
		return nil, err
	}
	s.knowPeers(members)
	// Until a connection attaches, the session waits as a dropped one does.
	s.mu.Lock()
	s.timer = b.afterFunc(s.linger, func() { s.Close(ReasonTimeout) })
	s.mu.Unlock()
	joinedFrame := newFrame(peerJoined(r.id, s.peer, s.meta))
	for _, other := range r.peers {
		other.tellJoined(r, s.peer, joinedFrame)
	}
	r.peers[s.peer] = s
	q, qt := b.takeHeldLocked(r, s.peer)
	r.mu.Unlock()
	r.send(b)
	b.deliverHeld(r, s.peer, q, qt)
	return &Joined{Session: s, Welcome: welcome.withSeq(1), After: 1}, nil
}

// resume hands an existing session to a new connection.
func (b *Broker) resume(ctx context.Context, req JoinRequest) (*Joined, error) {
	ctx, cancel := context.WithTimeout(ctx, storeOp)
	defer cancel()
	s, ok := b.Session(req.Resume.Session)
	if !ok || s.Closed() || s.room.id != req.Room || (req.Peer != "" && req.Peer != s.peer) {
		return nil, Errorf(CodeSessionExpired, "no session to resume in room %s: start a new one", req.Room)
	}
	last, dropped, err := b.store.Seqs(ctx, s.id)
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
		if err := b.store.Save(ctx, s.record(b.opts.NodeID, 0), b.storeTTL()); err != nil {
			s.logger().Error("recording the session's new transport in the store", "error", err)
		}
	}
	members, err := b.bp.Members(ctx, s.room.id)
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

// room holds the sessions of one room on this node, and the messages waiting
// for peers who are not in it (the offline hold).
type room struct {
	id      string
	mu      sync.RWMutex
	peers   map[string]*Session
	held    map[string][]*held
	deleted bool // removed from the broker; a joiner must look again

	// out are the frames for sessions of the room (peer-joined, peer-left,
	// relays from other nodes, held messages) in the order decided under
	// the lock; they are stored after it is let go (send), by one caller at
	// a time, sending says whether one does.
	out     []notice
	sending bool
}

// notice is a frame for one session of a room.
type notice struct {
	to *Session
	f  frame
}

// noteLocked queues f for s. The caller holds r's lock, and calls r.send
// once it has let it go.
func (r *room) noteLocked(s *Session, f frame) { r.out = append(r.out, notice{s, f}) }

// send stores the room's queued frames in their sessions' mailboxes, in
// the order queued, without the room's lock: no store round trip is made
// under it, and the order in which membership changed is the order in
// which each session hears of it. When another caller is sending, it sends
// these too.
func (r *room) send(b *Broker) {
	r.mu.Lock()
	if r.sending {
		r.mu.Unlock()
		return
	}
	r.sending = true
	for len(r.out) > 0 {
		q := r.out
		r.out = nil
		r.mu.Unlock()
		b.deliver(q)
		r.mu.Lock()
	}
	r.sending = false
	r.mu.Unlock()
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
	ctx := b.opCtx()
	if err := b.bp.Release(ctx, r.id, Member{Peer: s.peer, Session: s.id, Node: b.opts.NodeID}); err != nil {
		s.logger().Error("releasing peer id", "error", err)
	}
	r.mu.Lock()
	if r.peers[s.peer] == s {
		delete(r.peers, s.peer)
		left := newFrame(peerLeft(r.id, s.peer, reason))
		for _, other := range r.peers {
			other.tellLeft(r, s.peer, left)
		}
	}
	b.dropRoomIfEmptyLocked(r)
	r.mu.Unlock()
	r.send(b)
	_ = b.bp.Publish(ctx, Event{Kind: EventLeft, Node: b.opts.NodeID, Room: r.id, Peer: s.peer, Reason: reason})
	b.mu.Lock()
	b.count--
	b.mu.Unlock()
	// A closed session answers resumes with session-expired for a while, then is forgotten.
	b.afterFunc(b.opts.ResumeWindow, func() {
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
