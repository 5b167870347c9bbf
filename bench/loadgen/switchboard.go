package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Acknowledgement policy of the Switchboard drivers: the protocol asks for
// an ack at least every 32 messages or every second.
const (
	// ackEvery is how many messages a WebSocket session takes before it
	// acknowledges them.
	ackEvery = 16
	// ackDelay is how long after an unacknowledged message the session
	// acknowledges it anyway.
	ackDelay = 500 * time.Millisecond
	// pollWait is the wait parameter of long-poll GETs, in seconds.
	pollWait = 20
)

// envelope is a Switchboard envelope as the drivers decode it.
type envelope struct {
	Type    string          `json:"type"`
	Room    string          `json:"room,omitempty"`
	From    string          `json:"from,omitempty"`
	To      string          `json:"to,omitempty"`
	Seq     int64           `json:"seq,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// welcome is the payload of a welcome envelope.
type welcome struct {
	Peer    string `json:"peer"`
	Session string `json:"session"`
}

// relayed reports whether an envelope of type t is one peer's message to
// another, which Recv returns.
func relayed(t string) bool {
	switch t {
	case TypeOffer, TypeAnswer, TypeCandidate, TypeBye, TypeMessage, TypeError:
		return true
	}
	return false
}

// appendEnvelope appends m as a Switchboard envelope.
func appendEnvelope(b []byte, m Message) []byte {
	b = append(b, `{"v":1,"type":`...)
	b = appendString(b, m.Type)
	if m.To != "" {
		b = append(b, `,"to":`...)
		b = appendString(b, m.To)
	}
	b = append(b, `,"payload":`...)
	b = appendPayload(b, m.Payload)
	return append(b, '}')
}

// joinEnvelope returns the join envelope for peer in room.
func joinEnvelope(room, peer, token string) []byte {
	p := struct {
		Peer  string `json:"peer"`
		Token string `json:"token,omitempty"`
	}{peer, token}
	b, _ := json.Marshal(struct {
		V       int    `json:"v"`
		Type    string `json:"type"`
		Room    string `json:"room"`
		Payload any    `json:"payload"`
	}{1, "join", room, p})
	return b
}

// joinError is a refused join, with the error envelope's payload.
func joinError(payload json.RawMessage) error {
	return fmt.Errorf("loadgen: join refused: %s", errorText(payload))
}

// switchboardWS is the Switchboard driver over WebSocket.
type switchboardWS struct {
	url   string // ws://host/prefix/v1/ws
	token string
	src   *sources
}

var _ Driver = (*switchboardWS)(nil)

func newSwitchboardWS(o Options) (*switchboardWS, error) {
	u, err := wsBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/v1/ws"
	src, err := newSources(o.SourceAddrs, o.URL)
	if err != nil {
		return nil, err
	}
	return &switchboardWS{url: u.String(), token: o.Token, src: src}, nil
}

// Dial joins room as peer and waits for the welcome.
func (d *switchboardWS) Dial(ctx context.Context, room, peer string) (Conn, error) {
	u, _ := url.Parse(d.url)
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	w, err := dialWS(ctx, u, d.src)
	if err != nil {
		return nil, err
	}
	c := &sbWSConn{ws: w}
	stop := context.AfterFunc(ctx, w.abort) // bound the join
	defer stop()
	if err := w.write(joinEnvelope(room, peer, d.token)); err != nil {
		w.close(nil)
		return nil, fmt.Errorf("loadgen: join: %w", err)
	}
	for {
		frame, err := w.read()
		if err != nil {
			w.close(nil)
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("loadgen: waiting for welcome: %w", err)
		}
		var m wireMessage
		if err := decodeMessage(frame, &switchboardFields, &m); err != nil {
			w.close(nil)
			return nil, fmt.Errorf("loadgen: waiting for welcome: %w", err)
		}
		c.noteSeq(m.seq)
		switch string(m.typ) {
		case "welcome":
			if !stop() {
				w.close(nil)
				return nil, fmt.Errorf("loadgen: join: %w", ctx.Err())
			}
			return c, nil
		case TypeError:
			w.close(nil)
			return nil, joinError(m.payload)
		}
	}
}

// sbWSConn is a Switchboard session on WebSocket.
type sbWSConn struct {
	ws    *wsConn
	peers peerCache // owned by Recv

	mu      sync.Mutex // guards the acknowledgement state
	last    int64      // highest seq received
	acked   int64      // highest seq acknowledged
	timer   *time.Timer
	stopped bool
}

var _ BatchSender = (*sbWSConn)(nil)

// noteSeq records a received seq and acknowledges when the policy says so.
func (c *sbWSConn) noteSeq(seq int64) {
	if seq <= 0 {
		return
	}
	c.mu.Lock()
	if seq > c.last {
		c.last = seq
	}
	due := c.last-c.acked >= ackEvery
	if !due && c.timer == nil && !c.stopped {
		c.timer = time.AfterFunc(ackDelay, c.flushAck)
	}
	c.mu.Unlock()
	if due {
		c.ack()
	}
}

// flushAck is the ack timer's function.
func (c *sbWSConn) flushAck() {
	c.mu.Lock()
	c.timer = nil
	c.mu.Unlock()
	c.ack()
}

// ack acknowledges everything received so far, if that is news.
func (c *sbWSConn) ack() {
	c.mu.Lock()
	seq := c.last
	if seq <= c.acked || c.stopped {
		c.mu.Unlock()
		return
	}
	c.acked = seq
	c.mu.Unlock()
	c.ws.writeFrames(1, func(b []byte, _ int) []byte { // a failed write shows in Recv
		b = append(b, `{"v":1,"type":"ack","payload":{"seq":`...)
		b = strconv.AppendInt(b, seq, 10)
		return append(b, "}}"...)
	})
}

// Send sends m as an envelope.
func (c *sbWSConn) Send(m Message) error {
	return c.ws.writeFrames(1, func(b []byte, _ int) []byte { return appendEnvelope(b, m) })
}

// SendBatch sends ms as envelopes, one frame each, in one write.
func (c *sbWSConn) SendBatch(ms []Message) error {
	return c.ws.writeFrames(len(ms), func(b []byte, i int) []byte { return appendEnvelope(b, ms[i]) })
}

// Recv returns the next relayed message or error.
func (c *sbWSConn) Recv() (Message, error) {
	for {
		frame, err := c.ws.read()
		if err != nil {
			return Message{}, err
		}
		var m wireMessage
		if err := decodeMessage(frame, &switchboardFields, &m); err != nil {
			return Message{}, fmt.Errorf("loadgen: bad envelope: %w", err)
		}
		c.noteSeq(m.seq)
		if t := internType(m.typ); relayed(t) {
			return c.peers.message(t, &m), nil
		}
	}
}

// Close sends leave and closes the socket.
func (c *sbWSConn) Close() error {
	c.mu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	return c.ws.close([]byte(`{"v":1,"type":"leave"}`))
}

// switchboardLP is the Switchboard driver over HTTP long-polling. It owns
// an HTTP client whose connections Close releases.
type switchboardLP struct {
	base   string // http://host/prefix/v1/sessions
	token  string
	client *http.Client
}

var _ Driver = (*switchboardLP)(nil)

func newSwitchboardLP(o Options) (*switchboardLP, error) {
	u, err := httpBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/v1/sessions"
	src, err := newSources(o.SourceAddrs, o.URL)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit
	tr.MaxIdleConnsPerHost = 4096
	tr.DialContext = src.dial
	return &switchboardLP{base: u.String(), token: o.Token, client: &http.Client{Transport: tr}}, nil
}

// Close closes the driver's idle HTTP connections.
func (d *switchboardLP) Close() error {
	d.client.CloseIdleConnections()
	return nil
}

// do sends a request and returns the response body, checking its status.
func (d *switchboardLP) do(ctx context.Context, method, u string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		var env envelope
		if json.Unmarshal(b, &env) == nil && env.Type == TypeError {
			return nil, fmt.Errorf("loadgen: %s: HTTP %d: %s", method, resp.StatusCode, errorText(env.Payload))
		}
		return nil, fmt.Errorf("loadgen: %s: HTTP %d", method, resp.StatusCode)
	}
	return b, nil
}

// Dial creates a session with POST /v1/sessions.
func (d *switchboardLP) Dial(ctx context.Context, room, peer string) (Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	b, err := d.do(ctx, http.MethodPost, d.base, joinEnvelope(room, peer, d.token), http.StatusCreated)
	if err != nil {
		return nil, fmt.Errorf("loadgen: join: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("loadgen: join: %w", err)
	}
	if env.Type == TypeError {
		return nil, joinError(env.Payload)
	}
	var w welcome
	if env.Type != "welcome" || json.Unmarshal(env.Payload, &w) != nil || w.Session == "" {
		return nil, fmt.Errorf("loadgen: join: got %q, not a welcome", env.Type)
	}
	sctx, scancel := context.WithCancel(context.Background())
	return &sbLPConn{
		d:      d,
		url:    d.base + "/" + url.PathEscape(w.Session),
		last:   env.Seq,
		ctx:    sctx,
		cancel: scancel,
	}, nil
}

// sbLPConn is a Switchboard session on long-polling. Recv is its only
// poller.
type sbLPConn struct {
	d      *switchboardLP
	url    string // the session's address
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	last    int64     // highest seq received; owned by Recv
	pending []Message // received, not yet returned; owned by Recv
	peers   peerCache // owned by Recv
}

// Send posts one envelope.
func (c *sbLPConn) Send(m Message) error {
	_, err := c.post(appendEnvelope(make([]byte, 0, 64+len(m.Payload)), m))
	return err
}

// SendBatch posts the messages as one JSON array.
func (c *sbLPConn) SendBatch(ms []Message) error {
	n := 2
	for _, m := range ms {
		n += 64 + len(m.Payload)
	}
	b := append(make([]byte, 0, n), '[')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEnvelope(b, m)
	}
	_, err := c.post(append(b, ']'))
	return err
}

func (c *sbLPConn) post(body []byte) ([]byte, error) {
	b, err := c.d.do(c.ctx, http.MethodPost, c.url+"/messages", body, http.StatusAccepted)
	if err != nil && c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	return b, err
}

// Recv returns the next relayed message, polling when it has none.
func (c *sbLPConn) Recv() (Message, error) {
	for len(c.pending) == 0 {
		u := c.url + "/messages?after=" + strconv.FormatInt(c.last, 10) + "&wait=" + strconv.Itoa(pollWait)
		b, err := c.d.do(c.ctx, http.MethodGet, u, nil, http.StatusOK)
		if err != nil {
			if c.ctx.Err() != nil {
				return Message{}, ErrClosed
			}
			return Message{}, err
		}
		// The answer is a fresh buffer: messages may keep slices of it.
		err = eachElement(b, func(frame []byte) error {
			var m wireMessage
			if err := decodeMessage(frame, &switchboardFields, &m); err != nil {
				return err
			}
			c.last = max(c.last, m.seq)
			if t := internType(m.typ); relayed(t) {
				c.pending = append(c.pending, c.peers.message(t, &m))
			}
			return nil
		})
		if err != nil {
			return Message{}, fmt.Errorf("loadgen: bad poll answer: %w", err)
		}
	}
	m := c.pending[0]
	c.pending[0] = Message{}
	c.pending = c.pending[1:]
	return m, nil
}

// Close ends the poll in flight and deletes the session.
func (c *sbLPConn) Close() error {
	var err error
	c.once.Do(func() {
		c.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		_, err = c.d.do(ctx, http.MethodDelete, c.url, nil, http.StatusNoContent)
	})
	return err
}
