package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func init() { RegisterTransport("websocket", dialWebSocket) }

// maxFrameSize is the largest frame the client reads from the broker.
const maxFrameSize = 4 << 20

// wsConn is a Conn over one WebSocket (GET /v1/ws): one envelope per text
// frame.
type wsConn struct {
	ws          *websocket.Conn
	opts        *Options
	closeOnce   sync.Once
	closeErr    error
	readTimeout time.Duration

	readFailed     chan struct{} // closed when reading has failed, as it does once the broker closes
	readFailedOnce sync.Once
}

// leaveLinger is how long Close waits for the broker to close after leave.
const leaveLinger = time.Second

var _ Conn = (*wsConn)(nil)

// webSocketURL turns the broker's base URL into its WebSocket endpoint.
func webSocketURL(base *url.URL) (*url.URL, error) {
	u := base.JoinPath("v1", "ws")
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("switchboard: unsupported URL scheme %q", base.Scheme)
	}
	return u, nil
}

func dialWebSocket(ctx context.Context, base *url.URL, join Envelope, opts *Options) (Conn, Envelope, error) {
	u, err := webSocketURL(base)
	if err != nil {
		return nil, Envelope{}, err
	}
	d := websocket.Dialer{
		NetDialContext:   opts.NetDialContext,
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  opts.TLSConfig,
		HandshakeTimeout: opts.HandshakeTimeout,
	}
	ws, resp, err := d.DialContext(ctx, u.String(), opts.Header)
	if err != nil {
		if resp != nil {
			if perr := errorFromResponse(resp); perr != nil {
				return nil, Envelope{}, perr
			}
			return nil, Envelope{}, fmt.Errorf("switchboard: websocket handshake: %s: %w", resp.Status, err)
		}
		return nil, Envelope{}, fmt.Errorf("switchboard: websocket: %w", err)
	}
	c := &wsConn{ws: ws, opts: opts, readTimeout: opts.readTimeout(), readFailed: make(chan struct{})}
	ws.SetReadLimit(maxFrameSize)
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(c.readTimeout))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(opts.WriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})

	// Closing the socket when ctx ends aborts the handshake below.
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()

	deadline := time.Now().Add(opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = ws.SetWriteDeadline(deadline)
	_ = ws.SetReadDeadline(deadline)
	if err := c.write(join); err != nil {
		ws.Close()
		return nil, Envelope{}, ctxErr(ctx, fmt.Errorf("switchboard: websocket: sending join: %w", err))
	}
	envs, err := c.read()
	if err != nil {
		ws.Close()
		return nil, Envelope{}, ctxErr(ctx, fmt.Errorf("switchboard: websocket: waiting for welcome: %w", err))
	}
	welcome := envs[0]
	switch welcome.Type {
	case TypeWelcome:
	case TypeError:
		ws.Close()
		return nil, Envelope{}, welcome.Err()
	default:
		ws.Close()
		return nil, Envelope{}, fmt.Errorf("switchboard: websocket: broker answered join with %q", welcome.Type)
	}
	if !stop() {
		ws.Close()
		return nil, Envelope{}, ctx.Err()
	}
	_ = ws.SetWriteDeadline(time.Time{})
	return c, welcome, nil
}

// ctxErr prefers ctx's error to err once ctx has ended: a handshake aborted by
// ctx reports why.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// errorFromResponse reads an error envelope from a refused HTTP request, or
// returns nil when the body holds none.
func errorFromResponse(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil
	}
	var env Envelope
	if json.Unmarshal(body, &env) != nil || env.Type != TypeError {
		return nil
	}
	var pe *Error
	if errors.As(env.Err(), &pe) {
		return pe
	}
	return nil
}

func (c *wsConn) write(env Envelope) error {
	data, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

func (c *wsConn) read() ([]Envelope, error) {
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailedOnce.Do(func() { close(c.readFailed) })
			return nil, err
		}
		if typ != websocket.TextMessage {
			continue
		}
		var env Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("switchboard: websocket: malformed envelope from broker: %w", err)
		}
		return []Envelope{env}, nil
	}
}

// Send writes one frame per envelope.
func (c *wsConn) Send(ctx context.Context, envs []Envelope) error {
	for _, env := range envs {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		if err := c.write(env); err != nil {
			return fmt.Errorf("switchboard: websocket: %w", err)
		}
	}
	return nil
}

// Recv reads the next frame. A connection silent for longer than the read
// timeout is taken as broken.
func (c *wsConn) Recv(ctx context.Context) ([]Envelope, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout))
	envs, err := c.read()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("switchboard: websocket: %w", err)
	}
	return envs, nil
}

// Ack sends an ack envelope.
func (c *wsConn) Ack(ctx context.Context, seq uint64) error {
	payload, _ := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{seq})
	return c.Send(ctx, []Envelope{{V: Version, Type: TypeAck, Payload: payload}})
}

// Close sends leave and a close frame when leave is set, and waits a moment
// for the broker to close its end (which the reading goroutine sees), then
// closes the socket. Only the goroutine that writes may call it with leave
// set.
func (c *wsConn) Close(leave bool) error {
	c.closeOnce.Do(func() {
		if leave {
			deadline := time.Now().Add(c.opts.WriteTimeout)
			_ = c.ws.SetWriteDeadline(deadline)
			if err := c.write(Envelope{V: Version, Type: TypeLeave, ID: newID()}); err == nil {
				err = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "leave"), deadline)
				if err == nil {
					t := time.NewTimer(leaveLinger)
					select {
					case <-c.readFailed:
					case <-t.C:
					}
					t.Stop()
				}
			}
		}
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}
