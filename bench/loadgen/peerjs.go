package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"time"
)

// heartbeatEvery is how often a PeerJS client sends HEARTBEAT; the server
// drops a client silent for its alive_timeout (60 s by default).
const heartbeatEvery = 5 * time.Second

// toPeerJS maps a message type to the PeerJS server's. It relays only
// OFFER, ANSWER, CANDIDATE and LEAVE (and drops unknown types), so
// application messages travel as CANDIDATE.
func toPeerJS(t string) (string, error) {
	switch t {
	case TypeOffer:
		return "OFFER", nil
	case TypeAnswer:
		return "ANSWER", nil
	case TypeCandidate, TypeMessage:
		return "CANDIDATE", nil
	case TypeBye:
		return "LEAVE", nil
	}
	return "", fmt.Errorf("loadgen: PeerJS has no message type for %q", t)
}

// fromPeerJS maps a PeerJS server message type back; "" means not a
// message between peers.
func fromPeerJS(t []byte) string {
	switch string(t) {
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
	src *sources
}

var _ Driver = (*peerJS)(nil)

func newPeerJS(o Options) (*peerJS, error) {
	u, err := wsBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/peerjs"
	src, err := newSources(o.SourceAddrs, o.URL)
	if err != nil {
		return nil, err
	}
	return &peerJS{url: u.String(), key: o.PeerJSKey, src: src}, nil
}

// Dial connects peer and waits for the server's OPEN. PeerJS has no rooms:
// room is ignored.
func (d *peerJS) Dial(ctx context.Context, room, peer string) (Conn, error) {
	u, _ := url.Parse(d.url)
	q := url.Values{"key": {d.key}, "id": {peer}, "token": {rand.Text()}}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	w, err := dialWS(ctx, u, d.src)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, w.abort)
	defer stop()
	frame, err := w.read()
	if err != nil {
		w.close(nil)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("loadgen: waiting for OPEN: %w", err)
	}
	var m wireMessage
	if err := decodeMessage(frame, &peerJSFields, &m); err != nil || string(m.typ) != "OPEN" {
		w.close(nil)
		if err == nil {
			err = fmt.Errorf("%s: %s", m.typ, errorText(m.payload))
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
	ws    *wsConn
	peers peerCache // owned by Recv
}

var _ BatchSender = (*peerJSConn)(nil)

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

// appendPeerJS appends m as a PeerJS message of type t.
func appendPeerJS(b []byte, t string, m Message) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, t...)
	b = append(b, `","dst":`...)
	b = appendString(b, m.To)
	b = append(b, `,"payload":`...)
	b = appendPayload(b, m.Payload)
	return append(b, '}')
}

// Send sends m with its PeerJS type.
func (c *peerJSConn) Send(m Message) error {
	t, err := toPeerJS(m.Type)
	if err != nil {
		return err
	}
	return c.ws.writeFrames(1, func(b []byte, _ int) []byte { return appendPeerJS(b, t, m) })
}

// SendBatch sends ms, one frame each, in one write.
func (c *peerJSConn) SendBatch(ms []Message) error {
	for _, m := range ms {
		if _, err := toPeerJS(m.Type); err != nil {
			return err
		}
	}
	return c.ws.writeFrames(len(ms), func(b []byte, i int) []byte {
		t, _ := toPeerJS(ms[i].Type)
		return appendPeerJS(b, t, ms[i])
	})
}

// Recv returns the next message from a peer, or an error the server sent.
func (c *peerJSConn) Recv() (Message, error) {
	for {
		frame, err := c.ws.read()
		if err != nil {
			return Message{}, err
		}
		var m wireMessage
		if err := decodeMessage(frame, &peerJSFields, &m); err != nil {
			return Message{}, fmt.Errorf("loadgen: bad PeerJS message: %w", err)
		}
		if t := fromPeerJS(m.typ); t != "" {
			return c.peers.message(t, &m), nil
		}
	}
}

// Close closes the socket; the server forgets the peer.
func (c *peerJSConn) Close() error {
	return c.ws.close(nil)
}
