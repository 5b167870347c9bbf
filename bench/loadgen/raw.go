package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// raw is the driver for the bare relay (package barerelay): frames
// {"to","from","type","payload"} forwarded verbatim to the "to" client.
type raw struct {
	url string // ws://host/prefix/
}

var _ Driver = (*raw)(nil)

func newRaw(o Options) (*raw, error) {
	u, err := wsBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/"
	return &raw{url: u.String()}, nil
}

// rawFrame is a bare relay frame. The relay only reads "to"; "from" is the
// sender's own claim.
type rawFrame struct {
	To      string          `json:"to"`
	From    string          `json:"from"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Dial connects peer; the relay has registered it once the upgrade is
// answered. The relay has no rooms: room is ignored.
func (d *raw) Dial(ctx context.Context, room, peer string) (Conn, error) {
	u, _ := url.Parse(d.url)
	u.RawQuery = url.Values{"id": {peer}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	w, err := dialWS(ctx, u)
	if err != nil {
		return nil, err
	}
	return &rawConn{ws: w, id: peer}, nil
}

// rawConn is one bare relay client.
type rawConn struct {
	ws *wsConn
	id string
}

// Send sends m as a frame for m.To.
func (c *rawConn) Send(m Message) error {
	b := make([]byte, 0, 48+len(m.To)+len(c.id)+len(m.Payload))
	b = append(b, `{"to":`...)
	b = appendString(b, m.To)
	b = append(b, `,"from":`...)
	b = appendString(b, c.id)
	b = append(b, `,"type":`...)
	b = appendString(b, m.Type)
	b = append(b, `,"payload":`...)
	b = appendPayload(b, m.Payload)
	return c.ws.write(append(b, '}'))
}

// Recv returns the next frame.
func (c *rawConn) Recv() (Message, error) {
	frame, err := c.ws.read()
	if err != nil {
		return Message{}, err
	}
	var f rawFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		return Message{}, fmt.Errorf("loadgen: bad frame: %w", err)
	}
	return Message{Type: f.Type, From: f.From, To: f.To, Payload: f.Payload}, nil
}

// Close closes the socket.
func (c *rawConn) Close() error {
	return c.ws.close(nil)
}
