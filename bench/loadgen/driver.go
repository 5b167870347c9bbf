package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types, as the Switchboard protocol names them. Drivers of other
// protocols map them to their own.
const (
	TypeOffer     = "offer"
	TypeAnswer    = "answer"
	TypeCandidate = "candidate"
	TypeBye       = "bye"
	TypeMessage   = "message"
	// TypeError is never sent: Recv returns it for an error the server
	// reported, with the server's payload.
	TypeError = "error"
)

// Timeouts of the drivers.
const (
	// dialTimeout bounds a connection's handshake and join.
	dialTimeout = 10 * time.Second
	// writeWait bounds one WebSocket write.
	writeWait = 10 * time.Second
	// closeWait bounds a long-poll session's DELETE.
	closeWait = 5 * time.Second
)

// ErrClosed is returned by Send and Recv on a Conn that was closed.
var ErrClosed = errors.New("loadgen: connection closed")

// Message is a message from one peer to another, in the protocol-neutral
// form the workloads use.
type Message struct {
	// Type is one of the Type constants.
	Type string
	// From is the sending peer; set on received messages.
	From string
	// To is the receiving peer; required on sent messages.
	To string
	// Payload is the message's JSON payload, relayed untouched. On a
	// received message it may point into the connection's read buffer: it
	// is valid until the next Recv on that Conn, and a caller that keeps it
	// longer copies it.
	Payload json.RawMessage
}

// Driver connects simulated peers to a server speaking one protocol. It is
// safe for concurrent use. A Driver that holds resources implements
// io.Closer.
type Driver interface {
	// Dial connects peer id in room and returns once the server has
	// admitted it: the peer can then send and be sent to. Protocols
	// without rooms ignore room; peer ids must then be unique on the
	// server.
	Dial(ctx context.Context, room, peer string) (Conn, error)
}

// Conn is one connected peer. Send may be called from one goroutine and Recv
// from another at the same time; Close from any goroutine, at any time.
type Conn interface {
	// Send sends m to m.To. It does not retain m.Payload.
	Send(m Message) error
	// Recv blocks until a message for this peer arrives and returns it;
	// the protocol's own traffic (welcome, presence, acknowledgements,
	// keep-alives) is handled and not returned. An error the server
	// reports is returned as a Message of TypeError. Recv returns an error
	// once the connection has ended, ErrClosed after Close. The message's
	// Payload is valid until the next Recv.
	Recv() (Message, error)
	// Close leaves gracefully and releases the connection. It is
	// idempotent.
	Close() error
}

// BatchSender is implemented by a Conn that can send several messages at
// once: in one round trip (long-polling) or one write (WebSocket). Workloads
// use it when they have several messages ready.
type BatchSender interface {
	// SendBatch sends ms in order, as Send would one by one. It does not
	// retain their payloads.
	SendBatch(ms []Message) error
}

// NewDriver returns the driver for o.Protocol and o.Transport; o must have
// its defaults applied.
func NewDriver(o Options) (Driver, error) {
	switch {
	case o.Protocol == ProtocolSwitchboard && o.Transport == TransportWebSocket:
		return newSwitchboardWS(o)
	case o.Protocol == ProtocolSwitchboard && o.Transport == TransportLongPoll:
		return newSwitchboardLP(o)
	case o.Protocol == ProtocolPeerJS:
		return newPeerJS(o)
	case o.Protocol == ProtocolRaw:
		return newRaw(o)
	}
	return nil, fmt.Errorf("%w %q over %s", ErrUnknownProtocol, o.Protocol, o.Transport)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendPayload appends p, or null when it is empty.
func appendPayload(b []byte, p json.RawMessage) []byte {
	if len(p) == 0 {
		return append(b, "null"...)
	}
	return append(b, p...)
}

// errorText extracts a readable reason from an error payload: a Switchboard
// error's code, a PeerJS error's msg, or the payload itself.
func errorText(p json.RawMessage) string {
	var e struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal(p, &e) == nil {
		if e.Code != "" {
			return e.Code
		}
		if e.Msg != "" {
			return e.Msg
		}
	}
	if len(p) > 64 {
		p = p[:64]
	}
	return string(p)
}
