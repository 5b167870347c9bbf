package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// heartbeatEvery is how often a PeerJS client sends HEARTBEAT; the server
// drops a client silent for its alive_timeout (60 s by default).
const heartbeatEvery = 5 * time.Second

// peerJSTypes maps message types to the PeerJS server's. It relays only
// OFFER, ANSWER, CANDIDATE and LEAVE (and drops unknown types), so
// application messages travel as CANDIDATE.
var peerJSTypes = map[string]string{
	TypeOffer:     "OFFER",
	TypeAnswer:    "ANSWER",
	TypeCandidate: "CANDIDATE",
	TypeMessage:   "CANDIDATE",
	TypeBye:       "LEAVE",
}

// fromPeerJS maps a PeerJS server message type back; "" means not a
// message between peers.
func fromPeerJS(t string) string {
	switch t {
	case "OFFER":
		return TypeOffer
	case "ANSWER":
		return TypeAnswer
	case "CANDIDATE":
		return TypeCandidate
	case "LEAVE":
		return TypeBye
	case "ERROR", "EXPIRE", "ID-TAKEN", "INVALID-KEY":
		return TypeError
	}
	return ""
}

// peerJS is the driver for the PeerJS server (npm package "peer" 1.x).
type peerJS struct {
	url string // ws://host/prefix/peerjs
	key string
}

var _ Driver = (*peerJS)(nil)

func newPeerJS(o Options) (*peerJS, error) {
	u, err := wsBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/peerjs"
	return &peerJS{url: u.String(), key: o.PeerJSKey}, nil
}

// peerJSMessage is a PeerJS server message.
type peerJSMessage struct {
	Type    string          `json:"type"`
	Src     string          `json:"src,omitempty"`
	Dst     string          `json:"dst,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Dial connects peer and waits for the server's OPEN. PeerJS has no rooms:
// room is ignored.
func (d *peerJS) Dial(ctx context.Context, room, peer string) (Conn, error) {
	u, _ := url.Parse(d.url)
	q := url.Values{"key": {d.key}, "id": {peer}, "token": {rand.Text()}}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	w, err := dialWS(ctx, u)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()
	frame, err := w.read()
	if err != nil {
		w.close(nil)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("loadgen: waiting for OPEN: %w", err)
	}
	var m peerJSMessage
	if err := json.Unmarshal(frame, &m); err != nil || m.Type != "OPEN" {
		w.close(nil)
		if err == nil {
			err = fmt.Errorf("%s: %s", m.Type, errorText(m.Payload))
		}
		return nil, fmt.Errorf("loadgen: connect refused: %w", err)
	}
	if !stop() {
		w.close(nil)
		return nil, fmt.Errorf("loadgen: connect: %w", ctx.Err())
	}
	c := &peerJSConn{ws: w}
	go c.heartbeat()
	return c, nil
}

// peerJSConn is one PeerJS client.
type peerJSConn struct {
	ws *wsConn
}

// heartbeat sends HEARTBEAT until the connection closes.
func (c *peerJSConn) heartbeat() {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if c.ws.write([]byte(`{"type":"HEARTBEAT"}`)) != nil {
				return
			}
		case <-c.ws.closing:
			return
		}
	}
}

// Send sends m with its PeerJS type.
func (c *peerJSConn) Send(m Message) error {
	t, ok := peerJSTypes[m.Type]
	if !ok {
		return fmt.Errorf("loadgen: PeerJS has no message type for %q", m.Type)
	}
	b := make([]byte, 0, 48+len(m.To)+len(m.Payload))
	b = append(b, `{"type":"`...)
	b = append(b, t...)
	b = append(b, `","dst":`...)
	b = appendString(b, m.To)
	b = append(b, `,"payload":`...)
	b = appendPayload(b, m.Payload)
	return c.ws.write(append(b, '}'))
}

// Recv returns the next message from a peer, or an error the server sent.
func (c *peerJSConn) Recv() (Message, error) {
	for {
		frame, err := c.ws.read()
		if err != nil {
			return Message{}, err
		}
		var m peerJSMessage
		if err := json.Unmarshal(frame, &m); err != nil {
			return Message{}, fmt.Errorf("loadgen: bad PeerJS message: %w", err)
		}
		if t := fromPeerJS(m.Type); t != "" {
			return Message{Type: t, From: m.Src, To: m.Dst, Payload: m.Payload}, nil
		}
	}
}

// Close closes the socket; the server forgets the peer.
func (c *peerJSConn) Close() error {
	return c.ws.close(nil)
}
