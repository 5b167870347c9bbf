package barerelay

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Limits and timeouts of a relay connection.
const (
	// sendQueue is how many frames wait for one connection's writer before
	// the readers sending to it block.
	sendQueue = 256
	// writeWait is how long one frame may take to write.
	writeWait = 10 * time.Second
	// maxFrame is the largest frame a client may send, in bytes.
	maxFrame = 1 << 20
)

// errClosed is the body of the 503 that a closed Relay answers.
var errClosed = errors.New("barerelay: relay closed")

// Relay is the bare relay, an http.Handler that upgrades every request to a
// WebSocket. Create it with New; it is safe for concurrent use. The caller
// must Close it to end the connections, which an http.Server's Shutdown does
// not track once they are upgraded.
type Relay struct {
	upgrader websocket.Upgrader

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool
	wg     sync.WaitGroup // every reader and writer goroutine
}

// peer is one connected client. send is never closed: senders and the writer
// stop when done is closed, which only the peer's reader does.
type peer struct {
	id   string
	conn *websocket.Conn
	send chan []byte
	done chan struct{}
}

// New returns a Relay with no connections. It accepts WebSocket upgrades from
// any origin.
func New() *Relay {
	return &Relay{
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		peers:    make(map[string]*peer),
	}
}

// ServeHTTP upgrades the request and relays the connection's frames until it
// closes. The query parameter id names the client; it is required.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	id := req.URL.Query().Get("id")
	if id == "" {
		http.Error(w, "barerelay: the query parameter id is required", http.StatusBadRequest)
		return
	}
	p := &peer{id: id, send: make(chan []byte, sendQueue), done: make(chan struct{})}
	// Register before the upgrade answers, so that a client holding the
	// 101 response can already be reached.
	if !r.register(p) {
		http.Error(w, errClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	conn, err := r.upgrader.Upgrade(w, req, nil)
	if err != nil {
		r.unregister(p)
		close(p.done)
		return // the upgrader has answered
	}
	r.mu.Lock()
	p.conn = conn
	closed := r.closed
	if !closed {
		r.wg.Add(2)
	}
	r.mu.Unlock()
	if closed {
		r.unregister(p)
		close(p.done)
		conn.Close()
		return
	}
	go r.writePump(p)
	r.readPump(p)
}

// register adds p, replacing and disconnecting any peer with its id. It
// reports false when the relay is closed.
func (r *Relay) register(p *peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if old := r.peers[p.id]; old != nil && old.conn != nil {
		old.conn.Close() // its reader fails and cleans up
	}
	r.peers[p.id] = p
	return true
}

// unregister removes p unless another connection has taken its id since.
func (r *Relay) unregister(p *peer) {
	r.mu.Lock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
	}
	r.mu.Unlock()
}

func (r *Relay) lookup(id string) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[id]
}

// readPump reads p's frames and hands each to the writer of the peer it is
// addressed to, blocking while that peer's queue is full.
func (r *Relay) readPump(p *peer) {
	defer r.wg.Done()
	defer func() {
		r.unregister(p)
		close(p.done)
		p.conn.Close()
	}()
	p.conn.SetReadLimit(maxFrame)
	for {
		kind, frame, err := p.conn.ReadMessage()
		if err != nil {
			return
		}
		if kind != websocket.TextMessage {
			continue
		}
		var head struct {
			To string `json:"to"`
		}
		if json.Unmarshal(frame, &head) != nil || head.To == "" {
			continue
		}
		dst := r.lookup(head.To)
		if dst == nil {
			continue
		}
		select {
		case dst.send <- frame:
		case <-dst.done:
		}
	}
}

// writePump owns every write to p's connection.
func (r *Relay) writePump(p *peer) {
	defer r.wg.Done()
	for {
		select {
		case frame := <-p.send:
			p.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				p.conn.Close() // the reader fails and cleans up
				return
			}
		case <-p.done:
			return
		}
	}
}

// Len reports how many clients are connected.
func (r *Relay) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers)
}

// Close disconnects every client, refuses new ones and waits for every
// connection's goroutines to end. It is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, p := range r.peers {
		if p.conn != nil {
			p.conn.Close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
