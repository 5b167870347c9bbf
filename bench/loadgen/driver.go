package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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
	// Payload is the message's JSON payload, relayed untouched.
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
	// once the connection has ended, ErrClosed after Close.
	Recv() (Message, error)
	// Close leaves gracefully and releases the connection. It is
	// idempotent.
	Close() error
}

// BatchSender is implemented by a Conn that can send several messages in one
// round trip (long-polling). Workloads use it when they have several
// messages ready.
type BatchSender interface {
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

// wsDialer is shared by every WebSocket driver: default buffer sizes, as a
// browser's would be, and a bounded handshake.
var wsDialer = &websocket.Dialer{
	Proxy:            http.ProxyFromEnvironment,
	HandshakeTimeout: dialTimeout,
}

// wsConn wraps a WebSocket with the locking the drivers share: gorilla allows
// one reader and one writer at a time, and writes come from the sender, the
// receiver (acknowledgements) and timers (keep-alives).
type wsConn struct {
	c       *websocket.Conn
	wmu     sync.Mutex
	once    sync.Once
	closing chan struct{} // closed by close
}

// dialWS opens a WebSocket to u. It sends the Origin a page served by the
// same host would, which passes a same-origin check.
func dialWS(ctx context.Context, u *url.URL) (*wsConn, error) {
	h := http.Header{}
	h.Set("Origin", (&url.URL{Scheme: httpScheme(u.Scheme), Host: u.Host}).String())
	c, resp, err := wsDialer.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("loadgen: dial %s: %w (HTTP %s)", u.Redacted(), err, resp.Status)
		}
		return nil, fmt.Errorf("loadgen: dial %s: %w", u.Redacted(), err)
	}
	return &wsConn{c: c, closing: make(chan struct{})}, nil
}

func httpScheme(ws string) string {
	if ws == "wss" {
		return "https"
	}
	return "http"
}

// write sends one text frame.
func (w *wsConn) write(frame []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	select {
	case <-w.closing:
		return ErrClosed
	default:
	}
	w.c.SetWriteDeadline(time.Now().Add(writeWait))
	return w.c.WriteMessage(websocket.TextMessage, frame)
}

// read returns the next text frame.
func (w *wsConn) read() ([]byte, error) {
	for {
		kind, frame, err := w.c.ReadMessage()
		if err != nil {
			select {
			case <-w.closing:
				return nil, ErrClosed
			default:
				return nil, err
			}
		}
		if kind == websocket.TextMessage {
			return frame, nil
		}
	}
}

// close writes farewell (if any) and a close frame, then closes the socket.
func (w *wsConn) close(farewell []byte) error {
	w.once.Do(func() {
		w.wmu.Lock()
		deadline := time.Now().Add(time.Second)
		if farewell != nil {
			w.c.SetWriteDeadline(deadline)
			w.c.WriteMessage(websocket.TextMessage, farewell)
		}
		w.c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
		close(w.closing)
		w.wmu.Unlock()
		w.c.Close()
	})
	return nil
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
