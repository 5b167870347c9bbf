package wstransport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
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
	DefaultIdleTimeout  = 60 * time.Second       // a connection silent this long is dropped
	DefaultWriteTimeout = 10 * time.Second       // one write may take this long
	closeGrace          = time.Second            // how long a closing handshake may take
	retryFlush          = 500 * time.Millisecond // a flush that could not reach the store tries again after this

	// Buffer sizes: a connection keeps its small read buffer for life; write
	// buffers come from a pool only while a message is written.
	readBufferSize  = 256
	writeBufferSize = 4096
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
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: writeBufferSize,
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

// ServeHTTP upgrades the request and hands the connection to a goroutine of
// its own, letting the HTTP server's goroutine (and its grown stack) go.
func (t *Transport) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		t.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		return // the upgrader has answered
	}
	c := &conn{t: t, ws: ws}
	if !t.track(c) {
		c.closeWith(websocket.CloseGoingAway, "broker shutting down")
		return
	}
	go c.serve(context.Background(), func() { t.untrack(c) })
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

// conn is one WebSocket connection. Its reader is a goroutine for the life
// of the connection; its writer is a goroutine only while there is something
// to write (flush), so an idle connection holds one goroutine and no write
// buffer. Pings are written from a timer.
type conn struct {
	t        *Transport
	ws       *websocket.Conn
	sess     *broker.Session
	att      *broker.Attachment
	after    uint64      // last seq written; owned by the flushing goroutine
	flushing atomic.Bool // a flush goroutine runs
	pinger   *time.Timer
}

// stop tells the peer the broker is going away and ends the connection.
func (c *conn) stop() { go c.closeWith(websocket.CloseGoingAway, "broker shutting down") }

// closeWith sends a close frame, then closes the connection. It is safe to
// call from any goroutine, as gorilla allows WriteControl beside writers.
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

// write writes one envelope as a text frame within the write timeout.
func (c *conn) write(data []byte) error { return c.writeFrames([][]byte{data}) }

// writeFrames writes envelopes as text frames, as many as fit in one
// buffer per write call: a busy connection's queue goes out in few system
// calls. Frames are built here rather than by gorilla's writer, which
// writes each message on its own; a data frame is written whole by one
// call, so gorilla's control frames (pings, close), written whole by theirs,
// never land inside one.
func (c *conn) writeFrames(frames [][]byte) error {
	bp := batchPool.Get().(*[]byte)
	defer batchPool.Put(bp)
	nc := c.ws.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
	for len(frames) > 0 {
		b := (*bp)[:0]
		for len(frames) > 0 && (len(b) == 0 || len(b)+len(frames[0])+10 <= batchSize) {
			b = appendTextFrame(b, frames[0])
			frames = frames[1:]
		}
		*bp = b
		if _, err := nc.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// batchSize is how many bytes of frames one write call carries at most
// (a larger single frame goes alone).
const batchSize = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

// appendTextFrame appends a final, unmasked text frame holding payload
// (RFC 6455, section 5.2).
func appendTextFrame(b, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// serve admits the peer, then hands the connection to a fresh goroutine for
// its reads: the join's deep calls (decoding, token checks, logging) grow
// this goroutine's stack, and an idle connection should not keep that.
func (c *conn) serve(ctx context.Context, done func()) {
	handedOver := false
	defer func() {
		if p := recover(); p != nil {
			c.t.log.Error("websocket connection panicked", "panic", p)
		}
		if !handedOver {
			_ = c.ws.Close()
			done()
		}
	}()
	max := c.t.b.Options().MaxEnvelope
	c.ws.SetReadLimit(int64(max) * 16) // past this the connection is failed with 1009
	_ = c.ws.SetReadDeadline(time.Now().Add(c.t.opts.JoinTimeout))
	joined, err := c.join(ctx, max)
	if err != nil {
		e := broker.AsError(err)
		c.t.log.Info("join refused", "code", e.Code, "error", err, "remote", c.ws.RemoteAddr().String())
		_ = c.write(broker.ErrorFrame(e))
		c.closeWith(websocket.ClosePolicyViolation, string(e.Code))
		return
	}
	c.sess, c.after = joined.Session, joined.After
	c.att = c.sess.AttachFunc(func() {
		go c.closeWith(4001, "superseded by a newer connection of this session")
	})
	if err := c.write(joined.Welcome); err != nil {
		c.att.Detach()
		return
	}
	idle := c.t.opts.IdleTimeout
	_ = c.ws.SetReadDeadline(time.Now().Add(idle))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idle)) })
	c.pinger = time.AfterFunc(c.t.opts.PingInterval, c.ping)
	c.kick()
	handedOver = true
	go c.readLoop(ctx, max, done)
}

// readLoop reads the peer's frames until the connection ends, handing them
// to a goroutine that runs only while there are frames to handle. Handling
// (decoding, routing) needs a deep stack; reading does not, so an idle
// connection's one goroutine keeps a small stack.
func (c *conn) readLoop(ctx context.Context, max int, done func()) {
	defer done()
	defer c.ws.Close()
	defer c.pinger.Stop()
	defer c.att.Detach()
	defer func() {
		if p := recover(); p != nil {
			c.sess.Logger().Error("websocket connection panicked", "panic", p)
		}
	}()
	var in *inbox // made at the first frame: an idle connection keeps none
	idle := c.t.opts.IdleTimeout
	for {
		data, err := c.read(max)
		var pe *broker.Error
		switch {
		case errors.As(err, &pe):
			data = nil
		case err != nil:
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.sess.Logger().Debug("websocket read ended", "error", err)
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		if in == nil {
			in = &inbox{c: c, ctx: ctx, space: make(chan struct{}, 1)}
		}
		if !in.put(inFrame{data, pe}) {
			return
		}
	}
}

// inboxSize is how many frames a connection reads ahead of their handling.
const inboxSize = 64

// inFrame is a frame read, or the refusal of one that could not be.
type inFrame struct {
	data    []byte
	refusal *broker.Error
}

// inbox queues a connection's frames for handling in order. A handler
// goroutine runs while the queue is not empty.
type inbox struct {
	c     *conn
	ctx   context.Context
	mu    sync.Mutex
	q     []inFrame
	busy  bool
	ended bool          // the session ended: stop reading
	space chan struct{} // signalled when a full queue drains
}

// put queues f, waiting while the queue is full; it reports false once the
// session has ended.
func (in *inbox) put(f inFrame) bool {
	for {
		in.mu.Lock()
		if in.ended {
			in.mu.Unlock()
			return false
		}
		if len(in.q) < inboxSize {
			in.q = append(in.q, f)
			start := !in.busy
			in.busy = true
			in.mu.Unlock()
			if start {
				go in.handle()
			}
			return true
		}
		in.mu.Unlock()
		<-in.space
	}
}

func (in *inbox) handle() {
	sess := in.c.sess
	for {
		in.mu.Lock()
		if len(in.q) == 0 {
			in.busy = false
			in.q = nil // an idle connection keeps no queue
			in.mu.Unlock()
			return
		}
		f := in.q[0]
		in.q = in.q[1:]
		in.mu.Unlock()
		select {
		case in.space <- struct{}{}:
		default:
		}
		var err error
		if f.refusal != nil {
			sess.Refuse("", f.refusal)
		} else {
			err = sess.HandleRaw(in.ctx, f.data)
		}
		if errors.Is(err, broker.ErrSessionClosed) {
			in.mu.Lock()
			in.ended = true
			in.mu.Unlock()
			_ = in.c.ws.Close()
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

// kick starts a flush unless one runs.
func (c *conn) kick() {
	if c.flushing.CompareAndSwap(false, true) {
		go c.flush()
	}
}

// flush writes whatever the session has pending, then asks to be kicked
// when there is more, and ends. A failed write ends the connection.
func (c *conn) flush() {
	for {
		frames, last, err := c.att.Take(c.after)
		if errors.Is(err, broker.ErrSuperseded) {
			return
		}
		var pe *broker.Error
		switch {
		case errors.As(err, &pe):
			_ = c.write(broker.ErrorFrame(pe))
			fallthrough
		case errors.Is(err, broker.ErrSessionClosed):
			c.closeWith(websocket.CloseNormalClosure, "session ended")
			return
		case err != nil:
			// The session's store is unreachable for now: try again soon.
			c.sess.Logger().Warn("websocket flush: the mailbox is unreachable; retrying", "error", err)
			c.flushing.Store(false)
			time.AfterFunc(retryFlush, c.kick)
			return
		}
		if len(frames) == 0 {
			c.flushing.Store(false)
			c.att.OnPending(c.after, c.kick)
			return
		}
		if err := c.writeFrames(frames); err != nil {
			c.sess.Logger().Info("websocket write failed", "error", err)
			_ = c.ws.Close()
			return
		}
		c.after = last
	}
}

// ping writes a ping and sets the timer for the next.
func (c *conn) ping() {
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.opts.WriteTimeout)); err != nil {
		_ = c.ws.Close()
		return
	}
	c.pinger.Reset(c.t.opts.PingInterval)
}
