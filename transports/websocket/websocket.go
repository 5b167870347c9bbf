package websocket

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
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

	// Buffer sizes: gorilla's, used for the handshake only (the connection
	// it returns is set aside for the transport's own framing).
	handshakeReadBuffer  = 256
	handshakeWriteBuffer = 256
)

func init() {
	broker.Register(Name, func(o Options, shared broker.TransportOptions) (broker.Transport, error) {
		if len(o.AllowedOrigins) == 0 {
			o.AllowedOrigins = shared.AllowedOrigins
		}
		o.Origins.Public, o.Origins.Listen, o.Origins.TrustProxy = shared.PublicOrigins, shared.Listen, shared.TrustProxy
		return New(o), nil
	})
}

// Options configures the transport. The zero value of every field means its default.
type Options struct {
	// AllowedOrigins lists the other origins whose pages may connect; "*"
	// allows any. Default: the same origin only (see origin.Policy).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Origins is the rest of the origin policy, which a node sets from its
	// broker.TransportOptions (public_origins, listen, trust_proxy); its
	// Allowed defaults to AllowedOrigins. Default: the zero Policy.
	Origins origin.Policy `yaml:"-"`
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
	upgrader gorilla.Upgrader
	b        *broker.Broker
	log      *slog.Logger
	joinLog  broker.LogLimiter // refused joins: a line per interval, the rest counted

	mu       sync.Mutex
	conns    registry // every tracked connection, by connIdx
	stopping bool
	wg       sync.WaitGroup

	pollOnce sync.Once
	poll     *poller // nil where readiness polling is unavailable
	noPoll   bool    // tests: read as where there is no poller
	work     *workers
	wheel    *wheel // runs the connections' keep-alive checks
	maxEnv   int    // the broker's largest envelope, set by Mount
}

var _ broker.HTTPTransport = (*Transport)(nil)

// New returns a WebSocket transport with opts.
func New(opts Options) *Transport {
	opts.init()
	if len(opts.Origins.Allowed) == 0 {
		opts.Origins.Allowed = opts.AllowedOrigins
	}
	t := &Transport{opts: opts, log: slog.Default(), work: newWorkers()}
	t.wheel = newWheel(t.tickEvery(), t.work)
	t.upgrader = gorilla.Upgrader{
		ReadBufferSize:  handshakeReadBuffer,
		WriteBufferSize: handshakeWriteBuffer,
		WriteBufferPool: &sync.Pool{},
		// ServeHTTP has checked the origin, and answered a refusal itself.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return t
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Mount implements broker.HTTPTransport: it adds GET /v1/ws to mux, serving
// peers of b.
func (t *Transport) Mount(mux broker.Mux, b *broker.Broker) {
	t.b = b
	t.maxEnv = b.Options().MaxEnvelope
	t.log = b.Logger().With("transport", Name)
	mux.Handle("GET /v1/ws", http.HandlerFunc(t.ServeHTTP))
}

// Run implements broker.Transport: it waits for ctx to end, then closes every
// connection with 1001 (going away) and waits for them to end.
func (t *Transport) Run(ctx context.Context, _ *broker.Broker) error {
	<-ctx.Done()
	t.mu.Lock()
	t.stopping = true
	t.conns.each(func(c *conn) { go c.closeWith(closeGoingAway, "broker shutting down") })
	t.mu.Unlock()
	t.wg.Wait()
	t.wheel.close()
	if p := t.poller(); p != nil {
		p.close()
	}
	return nil
}

// tickEvery is how often a connection's keep-alive check runs: often
// enough to ping on time and to notice silence within a quarter of the
// idle timeout.
func (t *Transport) tickEvery() time.Duration {
	return min(t.opts.PingInterval, t.opts.IdleTimeout/4)
}

// poller returns the transport's readiness poller, started at first use;
// nil where there is none.
func (t *Transport) poller() *poller {
	t.pollOnce.Do(func() {
		if t.noPoll {
			return
		}
		p, err := newPoller(t.log)
		if err != nil {
			t.log.Warn("websocket: no readiness poller; every connection keeps a reading goroutine", "error", err)
			return
		}
		t.poll = p // nil where there is none to be had
	})
	return t.poll
}

// ServeHTTP upgrades the request and hands the connection to a goroutine of
// its own, letting the HTTP server's goroutine (and its grown stack) go.
func (t *Transport) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := t.opts.Origins.Check(r); err != nil {
		t.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		origin.Forbidden(w, err)
		return
	}
	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		t.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		return // the upgrader has answered
	}
	// From here on the connection is framed by this package (conn.go):
	// gorilla's Conn has read nothing past the handshake.
	c := newConn(t, ws.NetConn())
	if !t.track(c) {
		c.closeWith(closeGoingAway, "broker shutting down")
		return
	}
	go c.serve()
}

func (t *Transport) track(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping {
		return false
	}
	c.connIdx = int32(t.conns.add(c))
	t.wg.Add(1)
	c.tracked = true
	return true
}

func (t *Transport) untrack(c *conn) {
	t.mu.Lock()
	t.conns.remove(int(c.connIdx), c)
	t.mu.Unlock()
	t.wg.Done()
}
