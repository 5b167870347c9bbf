package wstransport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/internal/origin"
)

// Name is the transport's registered name.
const Name = "websocket"

// Timeouts of the WebSocket transport (docs/protocol.md, section 3).
const (
	DefaultJoinTimeout  = 10 * time.Second // the first frame, a join, must come within this
	DefaultPingInterval = 25 * time.Second
	DefaultIdleTimeout  = 60 * time.Second // a connection silent this long is dropped
	DefaultWriteTimeout = 10 * time.Second // one write may take this long
	closeGrace          = time.Second      // how long a closing handshake may take
)

func init() {
	broker.Register(Name, func(decode func(any) error) (broker.Transport, error) {
		var o Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return New(o), nil
	})
}

// Options configures the transport. The zero value of every field means its default.
type Options struct {
	// AllowedOrigins lists the origins that may connect; "*" allows any.
	// Default: the same origin only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// JoinTimeout, PingInterval, IdleTimeout and WriteTimeout default to
	// DefaultJoinTimeout, DefaultPingInterval, DefaultIdleTimeout and DefaultWriteTimeout.
	JoinTimeout  time.Duration `yaml:"join_timeout"`
	PingInterval time.Duration `yaml:"ping_interval"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

func (o *Options) init() {
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = DefaultJoinTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
}

// Transport serves peers over WebSocket. Mount it on a router, then Run it.
type Transport struct {
	opts     Options
	upgrader websocket.Upgrader
	b        *broker.Broker
	log      *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool
	wg       sync.WaitGroup
}

var _ broker.Transport = (*Transport)(nil)

// New returns a WebSocket transport with opts.
func New(opts Options) *Transport {
	opts.init()
	t := &Transport{opts: opts, conns: make(map[*conn]struct{}), log: slog.Default()}
	allowed := origin.List(opts.AllowedOrigins)
	t.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     allowed.Allowed,
	}
	return t
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Mount adds GET /v1/ws to r, serving peers of b.
func (t *Transport) Mount(r chi.Router, b *broker.Broker) {
	t.b = b
	t.log = b.Logger().With("transport", Name)
	r.Get("/v1/ws", t.ServeHTTP)
}

// Run implements broker.Transport: it waits for ctx to end, then closes every
// connection with 1001 (going away) and waits for their goroutines.
func (t *Transport) Run(ctx context.Context, _ *broker.Broker) error {
	<-ctx.Done()
	t.mu.Lock()
	t.stopping = true
	for c := range t.conns {
		c.stop()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

// ServeHTTP upgrades the request and serves the peer until it leaves.
func (t *Transport) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		t.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		return // the upgrader has answered
	}
	c := &conn{t: t, ws: ws, stopped: make(chan struct{}), readerDone: make(chan struct{})}
	if !t.track(c) {
		c.closeWith(websocket.CloseGoingAway, "broker shutting down")
		return
	}
	defer t.untrack(c)
	c.serve(r.Context())
}

func (t *Transport) track(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *Transport) untrack(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

// conn is one WebSocket connection.
type conn struct {
	t          *Transport
	ws         *websocket.Conn
	stopOnce   sync.Once
	stopped    chan struct{} // closed when the transport shuts down
	readerDone chan struct{}
}

func (c *conn) stop() { c.stopOnce.Do(func() { close(c.stopped) }) }

// closeWith sends a close frame, then closes the connection.
func (c *conn) closeWith(code int, text string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
	_ = c.ws.Close()
}

// errFrameType refuses binary frames.
var errFrameType = errors.New("wstransport: envelopes travel in text frames")

// read returns the next frame's data. A frame longer than the broker's
// largest envelope is read to its end and refused with too-large; the
// connection goes on.
func (c *conn) read(max int) ([]byte, error) {
	typ, rd, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(rd, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		n, err := io.Copy(io.Discard, rd)
		if err != nil {
			return nil, err
		}
		return nil, broker.Errorf(broker.CodeTooLarge, "envelope is %d bytes, the limit is %d", int64(len(data))+n, max)
	}
	if typ != websocket.TextMessage {
		return nil, broker.Errorf(broker.CodeBadRequest, "%v", errFrameType)
	}
	return data, nil
}

func (c *conn) serve(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			c.t.log.Error("websocket connection panicked", "panic", p)
			_ = c.ws.Close()
		}
	}()
	max := c.t.b.Options().MaxEnvelope
	c.ws.SetReadLimit(int64(max) * 16) // past this the connection is failed with 1009
	_ = c.ws.SetReadDeadline(time.Now().Add(c.t.opts.JoinTimeout))
	joined, err := c.join(ctx, max)
	if err != nil {
		e := broker.AsError(err)
		c.t.log.Info("join refused", "code", e.Code, "error", err, "remote", c.ws.RemoteAddr().String())
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
		_ = c.ws.WriteMessage(websocket.TextMessage, broker.ErrorFrame(e))
		c.closeWith(websocket.ClosePolicyViolation, string(e.Code))
		return
	}
	sess := joined.Session
	att := sess.Attach()
	defer att.Detach()
	idle := c.t.opts.IdleTimeout
	_ = c.ws.SetReadDeadline(time.Now().Add(idle))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idle)) })

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write(sess, att, joined)
	}()
	defer func() {
		close(c.readerDone)
		<-writerDone
	}()
	for {
		data, err := c.read(max)
		var pe *broker.Error
		switch {
		case errors.As(err, &pe):
			sess.Refuse("", pe)
			continue
		case err != nil:
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				sess.Logger().Debug("websocket read ended", "error", err)
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		if err := sess.HandleRaw(ctx, data); errors.Is(err, broker.ErrSessionClosed) {
			return
		}
	}
}

// join reads the first frame, which must be a join, and admits the peer.
func (c *conn) join(ctx context.Context, max int) (*broker.Joined, error) {
	data, err := c.read(max)
	if err != nil {
		var pe *broker.Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, broker.Errorf(broker.CodeBadRequest, "no join within %v", c.t.opts.JoinTimeout)
	}
	env, err := broker.Decode(data, max)
	if err != nil {
		return nil, err
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		return nil, err
	}
	joined, err := c.t.b.Join(ctx, req)
	if pe := (*broker.Error)(nil); errors.As(err, &pe) && pe.Ref == "" {
		pe.Ref = env.ID
	}
	return joined, err
}

// write owns every write: the welcome, then whatever the mailbox gives, and
// pings. It ends the connection when it returns.
func (c *conn) write(sess *broker.Session, att *broker.Attachment, joined *broker.Joined) {
	defer c.ws.Close()
	wt := c.t.opts.WriteTimeout
	send := func(data []byte) bool {
		_ = c.ws.SetWriteDeadline(time.Now().Add(wt))
		if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
			sess.Logger().Info("websocket write failed", "error", err)
			return false
		}
		return true
	}
	if !send(joined.Welcome) {
		return
	}
	ping := time.NewTicker(c.t.opts.PingInterval)
	defer ping.Stop()
	after := joined.After
	for {
		frames, last, wait, err := sess.Pending(after)
		if err != nil {
			var pe *broker.Error
			if errors.As(err, &pe) {
				send(broker.ErrorFrame(pe))
			}
			c.closeWith(websocket.CloseNormalClosure, "session ended")
			return
		}
		for _, f := range frames {
			if !send(f) {
				return
			}
		}
		after = last
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				return
			}
		case <-att.Gone():
			c.closeWith(4001, "superseded by a newer connection of this session")
			return
		case <-c.stopped:
			c.closeWith(websocket.CloseGoingAway, "broker shutting down")
			return
		case <-c.readerDone:
			return
		}
	}
}
