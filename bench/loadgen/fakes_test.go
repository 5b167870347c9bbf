package loadgen

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// fakeBroker is a small stand-in for the Switchboard broker, enough of
// docs/protocol.md for the driver's tests: join and welcome, seq numbering,
// peer-joined, routing by to, ack, the mailbox bound with slow-consumer, and
// long-polling. It has no offline hold: a message for an absent peer is
// answered with peer-unavailable at once.
type fakeBroker struct {
	upgrader websocket.Upgrader
	bound    int          // most unacknowledged messages a session keeps
	acks     atomic.Int64 // WebSocket acks received

	mu       sync.Mutex
	peers    map[string]*fakeSession // by room + "/" + peer
	sessions map[string]*fakeSession // by secret
}

type fakeSession struct {
	room, peer, secret string
	conn               *websocket.Conn // nil on long-poll

	mu     sync.Mutex
	seq    int64
	buf    [][]byte // unacknowledged envelopes, seq acked+1 … seq
	acked  int64
	notify chan struct{}
	done   chan struct{}
	ended  bool
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		bound:    1024,
		peers:    make(map[string]*fakeSession),
		sessions: make(map[string]*fakeSession),
	}
}

func (b *fakeBroker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", b.serveWS)
	mux.HandleFunc("POST /v1/sessions", b.serveJoin)
	mux.HandleFunc("POST /v1/sessions/{s}/messages", b.servePost)
	mux.HandleFunc("GET /v1/sessions/{s}/messages", b.servePoll)
	mux.HandleFunc("DELETE /v1/sessions/{s}", b.serveDelete)
	return mux
}

type fakeEnvelope struct {
	Type    string          `json:"type"`
	Room    string          `json:"room,omitempty"`
	From    string          `json:"from,omitempty"`
	To      string          `json:"to,omitempty"`
	Seq     int64           `json:"seq,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func errorPayload(code string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"code": code, "message": code})
	return b
}

// join admits a session, or returns the error code refusing it.
func (b *fakeBroker) join(env fakeEnvelope, conn *websocket.Conn) (*fakeSession, []byte, string) {
	var p struct {
		Peer string `json:"peer"`
	}
	if env.Type != "join" || env.Room == "" || json.Unmarshal(env.Payload, &p) != nil || p.Peer == "" {
		return nil, nil, "bad-request"
	}
	s := &fakeSession{room: env.Room, peer: p.Peer, secret: rand.Text(), conn: conn,
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	key := s.room + "/" + s.peer
	if b.peers[key] != nil {
		b.mu.Unlock()
		return nil, nil, "peer-id-taken"
	}
	var others []*fakeSession
	for _, o := range b.peers {
		if o.room == s.room {
			others = append(others, o)
		}
	}
	b.peers[key] = s
	b.sessions[s.secret] = s
	b.mu.Unlock()
	w, _ := json.Marshal(map[string]any{"peer": s.peer, "session": s.secret, "peers": []any{}, "resumed": false})
	welcome := s.deliver(fakeEnvelope{Type: "welcome", Room: s.room, Payload: w}, conn != nil)
	joined, _ := json.Marshal(map[string]string{"peer": s.peer})
	for _, o := range others {
		b.deliver(o, fakeEnvelope{Type: "peer-joined", Room: o.room, Payload: joined})
	}
	return s, welcome, ""
}

// deliver numbers env and queues it for s; keep false leaves it out of the
// mailbox (a long-poll welcome travels in the join's answer).
func (s *fakeSession) deliver(env fakeEnvelope, keep bool) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	env.Seq = s.seq
	out, _ := json.Marshal(env)
	if keep {
		s.buf = append(s.buf, out)
	} else {
		s.acked = s.seq
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return out
}

// deliver queues env for s, ending s as a slow consumer past the bound.
func (b *fakeBroker) deliver(s *fakeSession, env fakeEnvelope) {
	s.deliver(env, true)
	s.mu.Lock()
	over := len(s.buf) > b.bound
	s.mu.Unlock()
	if over {
		b.end(s, "slow-consumer")
	}
}

// ack forgets what s has processed.
func (s *fakeSession) ack(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.seq {
		seq = s.seq
	}
	if n := seq - s.acked; n > 0 {
		s.buf = s.buf[n:]
		s.acked = seq
	}
}

// end removes s; code, if set, is the reason of the WebSocket close frame.
func (b *fakeBroker) end(s *fakeSession, code string) {
	b.mu.Lock()
	if b.peers[s.room+"/"+s.peer] == s {
		delete(b.peers, s.room+"/"+s.peer)
	}
	delete(b.sessions, s.secret)
	b.mu.Unlock()
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	close(s.done)
	s.mu.Unlock()
	if s.conn != nil {
		if code != "" {
			s.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, code), time.Now().Add(time.Second))
		}
		s.conn.Close()
	}
}

// route relays env from s to its addressee.
func (b *fakeBroker) route(s *fakeSession, env fakeEnvelope) {
	switch env.Type {
	case "ack":
		var p struct {
			Seq int64 `json:"seq"`
		}
		json.Unmarshal(env.Payload, &p)
		b.acks.Add(1)
		s.ack(p.Seq)
		return
	case "leave":
		b.end(s, "")
		return
	case "offer", "answer", "candidate", "message", "bye":
	default:
		b.deliver(s, fakeEnvelope{Type: "error", Payload: errorPayload("unknown-type")})
		return
	}
	b.mu.Lock()
	dst := b.peers[s.room+"/"+env.To]
	b.mu.Unlock()
	if dst == nil {
		b.deliver(s, fakeEnvelope{Type: "error", Payload: errorPayload("peer-unavailable")})
		return
	}
	b.deliver(dst, fakeEnvelope{Type: env.Type, Room: s.room, From: s.peer, To: env.To, Payload: env.Payload})
}

func (b *fakeBroker) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	var env fakeEnvelope
	if conn.ReadJSON(&env) != nil {
		return
	}
	s, _, code := b.join(env, conn)
	if s == nil {
		conn.WriteJSON(fakeEnvelope{Type: "error", Payload: errorPayload(code)})
		return
	}
	defer b.end(s, "")
	go func() { // writer: sends what is queued, in order
		written := int64(0)
		for {
			select {
			case <-s.notify:
			case <-s.done:
				return
			}
			s.mu.Lock()
			var out [][]byte
			for i, m := range s.buf {
				if s.acked+int64(i)+1 > written {
					out = append(out, m)
				}
			}
			written = s.seq
			s.mu.Unlock()
			for _, m := range out {
				if conn.WriteMessage(websocket.TextMessage, m) != nil {
					conn.Close()
					return
				}
			}
		}
	}()
	for {
		var env fakeEnvelope
		if conn.ReadJSON(&env) != nil {
			return
		}
		b.route(s, env)
	}
}

func (b *fakeBroker) session(w http.ResponseWriter, r *http.Request) *fakeSession {
	b.mu.Lock()
	s := b.sessions[r.PathValue("s")]
	b.mu.Unlock()
	if s == nil {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(fakeEnvelope{Type: "error", Payload: errorPayload("session-expired")})
	}
	return s
}

func (b *fakeBroker) serveJoin(w http.ResponseWriter, r *http.Request) {
	var env fakeEnvelope
	if json.NewDecoder(r.Body).Decode(&env) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s, welcome, code := b.join(env, nil)
	if s == nil {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(fakeEnvelope{Type: "error", Payload: errorPayload(code)})
		return
	}
	w.WriteHeader(http.StatusCreated)
	w.Write(welcome)
}

func (b *fakeBroker) servePost(w http.ResponseWriter, r *http.Request) {
	s := b.session(w, r)
	if s == nil {
		return
	}
	var raw json.RawMessage
	if json.NewDecoder(r.Body).Decode(&raw) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var envs []fakeEnvelope
	if len(raw) > 0 && raw[0] == '[' {
		json.Unmarshal(raw, &envs)
	} else {
		var env fakeEnvelope
		json.Unmarshal(raw, &env)
		envs = append(envs, env)
	}
	for _, env := range envs {
		b.route(s, env)
	}
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"accepted":` + strconv.Itoa(len(envs)) + `}`))
}

func (b *fakeBroker) servePoll(w http.ResponseWriter, r *http.Request) {
	s := b.session(w, r)
	if s == nil {
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	s.ack(after)
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for {
		s.mu.Lock()
		out := append([][]byte(nil), s.buf...)
		s.mu.Unlock()
		if len(out) > 0 {
			w.Write([]byte("["))
			for i, m := range out {
				if i > 0 {
					w.Write([]byte(","))
				}
				w.Write(m)
			}
			w.Write([]byte("]"))
			return
		}
		select {
		case <-s.notify:
		case <-timer.C:
			w.Write([]byte("[]"))
			return
		case <-s.done:
			w.Write([]byte("[]"))
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (b *fakeBroker) serveDelete(w http.ResponseWriter, r *http.Request) {
	if s := b.session(w, r); s != nil {
		b.end(s, "")
		w.WriteHeader(http.StatusNoContent)
	}
}

// close ends every session.
func (b *fakeBroker) close() {
	b.mu.Lock()
	var all []*fakeSession
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.Unlock()
	for _, s := range all {
		b.end(s, "")
	}
}

// fakePeerJS is a small stand-in for the PeerJS server: /peerjs with key,
// id and token; OPEN on connect; OFFER, ANSWER, CANDIDATE and LEAVE relayed
// to dst with src set; HEARTBEAT counted; anything else dropped.
type fakePeerJS struct {
	upgrader   websocket.Upgrader
	heartbeats atomic.Int64

	mu      sync.Mutex
	clients map[string]*fakePeerJSClient
}

type fakePeerJSClient struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (c *fakePeerJSClient) write(v any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.WriteJSON(v)
}

func newFakePeerJS() *fakePeerJS {
	return &fakePeerJS{
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		clients:  make(map[string]*fakePeerJSClient),
	}
}

func (f *fakePeerJS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/peerjs" {
		http.NotFound(w, r)
		return
	}
	conn, err := f.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	q := r.URL.Query()
	id := q.Get("id")
	c := &fakePeerJSClient{conn: conn}
	if q.Get("key") != "peerjs" || id == "" || q.Get("token") == "" {
		c.write(map[string]any{"type": "ERROR", "payload": map[string]string{"msg": "Invalid key provided"}})
		return
	}
	f.mu.Lock()
	if f.clients[id] != nil {
		f.mu.Unlock()
		c.write(map[string]any{"type": "ID-TAKEN", "payload": map[string]string{"msg": "ID is taken"}})
		return
	}
	f.clients[id] = c
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.clients, id)
		f.mu.Unlock()
	}()
	c.write(map[string]string{"type": "OPEN"})
	for {
		var m map[string]json.RawMessage
		if conn.ReadJSON(&m) != nil {
			return
		}
		var typ, dst string
		json.Unmarshal(m["type"], &typ)
		json.Unmarshal(m["dst"], &dst)
		switch typ {
		case "HEARTBEAT":
			f.heartbeats.Add(1)
		case "OFFER", "ANSWER", "CANDIDATE", "LEAVE":
			f.mu.Lock()
			d := f.clients[dst]
			f.mu.Unlock()
			if d != nil {
				d.write(map[string]any{"type": typ, "src": id, "dst": dst, "payload": m["payload"]})
			}
		}
	}
}

// close disconnects every client.
func (f *fakePeerJS) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		c.conn.Close()
	}
}
