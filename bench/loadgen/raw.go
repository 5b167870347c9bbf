package loadgen

import (
	"context"
	"fmt"
	"net/url"
)

// raw is the driver for the bare relay (package barerelay): frames
// {"to","from","type","payload"} forwarded verbatim to the "to" client.
type raw struct {
	url string // ws://host/prefix/
	src *sources
}

var _ Driver = (*raw)(nil)

func newRaw(o Options) (*raw, error) {
	u, err := wsBase(o.URL)
	if err != nil {
		return nil, err
	}
	u.Path += "/"
	src, err := newSources(o.SourceAddrs, o.URL)
	if err != nil {
		return nil, err
	}
	return &raw{url: u.String(), src: src}, nil
}

// Dial connects peer; the relay has registered it once the upgrade is
// answered. The relay has no rooms: room is ignored.
func (d *raw) Dial(ctx context.Context, room, peer string) (Conn, error) {
	u, _ := url.Parse(d.url)
	u.RawQuery = url.Values{"id": {peer}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	w, err := dialWS(ctx, u, d.src)
	if err != nil {
		return nil, err
	}
	return &rawConn{ws: w, id: peer}, nil
}

// rawConn is one bare relay client.
type rawConn struct {
	ws    *wsConn
	id    string
	peers peerCache // owned by Recv
}

var _ BatchSender = (*rawConn)(nil)

// appendFrame appends m as a bare relay frame from c: {"to", "from",
// "type", "payload"}. The relay only reads "to"; "from" is the sender's own
// claim.
func (c *rawConn) appendFrame(b []byte, m Message) []byte {
	b = append(b, `{"to":`...)
	b = appendString(b, m.To)
	b = append(b, `,"from":`...)
	b = appendString(b, c.id)
	b = append(b, `,"type":`...)
	b = appendString(b, m.Type)
	b = append(b, `,"payload":`...)
	b = appendPayload(b, m.Payload)
	return append(b, '}')
}

// Send sends m as a frame for m.To.
func (c *rawConn) Send(m Message) error {
	return c.ws.writeFrames(1, func(b []byte, _ int) []byte { return c.appendFrame(b, m) })
}

// SendBatch sends ms, one frame each, in one write.
func (c *rawConn) SendBatch(ms []Message) error {
	return c.ws.writeFrames(len(ms), func(b []byte, i int) []byte { return c.appendFrame(b, ms[i]) })
}

// Recv returns the next frame. Its fields are those of a Switchboard
// envelope.
func (c *rawConn) Recv() (Message, error) {
	frame, err := c.ws.read()
	if err != nil {
		return Message{}, err
	}
	var m wireMessage
	if err := decodeMessage(frame, &switchboardFields, &m); err != nil {
		return Message{}, fmt.Errorf("loadgen: bad frame: %w", err)
	}
	return c.peers.message(internType(m.typ), &m), nil
}

// Close closes the socket.
func (c *rawConn) Close() error {
	return c.ws.close(nil)
}
