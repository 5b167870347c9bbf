package redisconn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/keepalive"
)

// Name is the name the transport is registered under (Options.Transport).
const Name = "redis"

// DefaultPrefix is the key prefix used when neither the URL nor the Config
// names one: the broker's default.
const DefaultPrefix = "switchboard"

// DefaultKeepAlive is how long a connection may publish nothing, or hear
// nothing, before it publishes a ping. The broker ends a peer that has
// published nothing for 60 s.
const DefaultKeepAlive = 20 * time.Second

// Timings of a connection.
const (
	// healthInterval is how long the pub/sub connection may carry nothing
	// before it pings Redis; a ping unanswered for as long again means the
	// connection is dead.
	healthInterval = 3 * time.Second
	// publishMin and publishMax bound the backoff of a publish that no
	// broker heard.
	publishMin = 5 * time.Millisecond
	publishMax = 200 * time.Millisecond
	// silenceSlack is added to twice the keepalive interval to make the
	// longest the broker may stay silent before the connection counts as
	// broken.
	silenceSlack = 10 * time.Second
)

// pingMarker marks the connection's own keepalive pings, whose pongs Recv
// does not return.
const pingMarker = keepalive.Marker("switchboard_redis_keepalive")

func init() { switchboard.RegisterTransport(Name, NewDialFunc(Config{})) }

// Config configures a Redis transport beyond what its URL says. The zero
// value of every field means its default.
type Config struct {
	// Prefix is the broker's key prefix (its transport's prefix option),
	// for URLs without ?prefix. Default: DefaultPrefix.
	Prefix string
	// KeepAlive is how long a connection may publish nothing, or hear
	// nothing from the broker, before it publishes a ping; it must be well
	// under the broker's idle timeout. A connection that has heard nothing
	// for twice this and 10 s more counts as broken. Default:
	// DefaultKeepAlive.
	KeepAlive time.Duration
}

// NewDialFunc returns a dialer of the Redis transport with cfg, for
// switchboard.RegisterTransport. The transport registered as "redis" is
// NewDialFunc(Config{}); register another under a name of your own for a
// different prefix or keepalive:
//
//	switchboard.RegisterTransport("redis-tenant", redisconn.NewDialFunc(redisconn.Config{Prefix: "tenant"}))
func NewDialFunc(cfg Config) switchboard.DialFunc {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	return func(ctx context.Context, base *url.URL, join switchboard.Envelope, opts *switchboard.Options) (switchboard.Conn, switchboard.Envelope, error) {
		return dial(ctx, cfg, base, join, opts)
	}
}

// errNoBroker means that no broker subscribes to the input channel: PUBLISH
// reached nobody for as long as it was tried. Like errClosed, it is wrapped
// in an error that names the package and what failed.
var errNoBroker = errors.New("no broker is listening on the input channel")

// errClosed is what a closed connection's methods fail with.
var errClosed = errors.New("connection closed")

// conn is a switchboard.Conn over Redis pub/sub: it publishes to P:in and
// hears on its reply channel and on P:peer:<room>:<peer>.
type conn struct {
	opts      *switchboard.Options
	rdb       *redis.Client
	ps        *redis.PubSub
	in        string // P:in
	reply     string // P:reply:<random>
	keepAlive time.Duration
	silence   time.Duration // the longest the broker may stay silent

	// Set during dial, read-only afterwards.
	prefix   string
	peerChan string
	session  string

	mu      sync.Mutex
	queue   []any // *redis.Message and *redis.Subscription, as the reader took them
	readErr error // why the reader ended
	wake    chan struct{}

	lastPub   atomic.Int64 // unix nanoseconds of the last publish heard by a broker
	lastHeard atomic.Int64 // unix nanoseconds of the last message on a channel of ours

	closed     chan struct{}
	closeOnce  sync.Once
	readerDone chan struct{}
	aliveDone  chan struct{} // closed when the keepalive goroutine has ended; nil if none
}

var _ switchboard.Conn = (*conn)(nil)

// redisOptions turns the URL that Dial was given into go-redis options and
// the key prefix.
func redisOptions(base *url.URL, cfg Config, opts *switchboard.Options) (*redis.Options, string, error) {
	switch base.Scheme {
	case "redis", "rediss":
	default:
		return nil, "", fmt.Errorf("redisconn: unsupported URL scheme %q: want redis or rediss", base.Scheme)
	}
	u := *base
	q := u.Query()
	prefix := cfg.Prefix
	if q.Has("prefix") {
		prefix = q.Get("prefix")
		q.Del("prefix")
	}
	prefix = strings.TrimSuffix(prefix, ":")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, "", fmt.Errorf("redisconn: %w", err)
	}
	tlsConf := o.TLSConfig
	if tlsConf != nil && opts.TLSConfig != nil {
		c := opts.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = tlsConf.ServerName
		}
		tlsConf = c
	}
	o.TLSConfig = tlsConf
	netDial := opts.NetDialContext
	if netDial == nil {
		netDial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	// A Dialer of one's own takes over TLS from go-redis.
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netDial(ctx, network, addr)
		if err != nil || tlsConf == nil {
			return c, err
		}
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	o.ContextTimeoutEnabled = true
	o.PoolSize = 4
	return o, prefix, nil
}

// dial connects, subscribes, joins and waits for the welcome.
func dial(ctx context.Context, cfg Config, base *url.URL, join switchboard.Envelope, opts *switchboard.Options) (switchboard.Conn, switchboard.Envelope, error) {
	ro, prefix, err := redisOptions(base, cfg, opts)
	if err != nil {
		return nil, switchboard.Envelope{}, err
	}
	payload := map[string]json.RawMessage{}
	if len(join.Payload) > 0 && string(join.Payload) != "null" {
		if err := json.Unmarshal(join.Payload, &payload); err != nil {
			return nil, switchboard.Envelope{}, fmt.Errorf("redisconn: join payload is not an object: %w", err)
		}
	}
	var peer string
	_ = json.Unmarshal(payload["peer"], &peer)

	id := make([]byte, 12)
	_, _ = rand.Read(id)
	c := &conn{
		opts:       opts,
		rdb:        redis.NewClient(ro),
		in:         prefix + ":in",
		reply:      prefix + ":reply:" + hex.EncodeToString(id),
		prefix:     prefix,
		keepAlive:  cfg.KeepAlive,
		silence:    2*cfg.KeepAlive + silenceSlack,
		wake:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	welcome, err := c.join(ctx, join, payload, peer)
	if err != nil {
		c.Close(false)
		if ctx.Err() != nil && !isRefusal(err) && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, switchboard.Envelope{}, err
	}
	now := time.Now().UnixNano()
	c.lastHeard.Store(now)
	c.lastPub.Store(now)
	c.aliveDone = make(chan struct{})
	go c.keepAliveLoop()
	return c, welcome, nil
}

func isRefusal(err error) bool {
	var pe *switchboard.Error
	return errors.As(err, &pe)
}

// join runs the handshake on a new conn.
func (c *conn) join(ctx context.Context, join switchboard.Envelope, payload map[string]json.RawMessage, peer string) (switchboard.Envelope, error) {
	channels := []string{c.reply}
	if peer != "" && join.Room != "" {
		c.peerChan = c.peerChannel(join.Room, peer)
		channels = append(channels, c.peerChan)
	}
	c.ps = c.rdb.Subscribe(ctx) // no channels: connects on the SUBSCRIBE below, which reports errors
	if err := c.ps.Subscribe(ctx, channels...); err != nil {
		close(c.readerDone)
		return switchboard.Envelope{}, fmt.Errorf("redisconn: subscribing: %w", err)
	}
	go c.read()
	if err := c.confirmed(ctx, channels); err != nil {
		return switchboard.Envelope{}, err
	}

	reply, _ := json.Marshal(c.reply)
	payload["reply"] = reply
	body, err := json.Marshal(payload)
	if err != nil {
		return switchboard.Envelope{}, err
	}
	join.Payload = body
	data, err := json.Marshal(join)
	if err != nil {
		return switchboard.Envelope{}, err
	}
	if err := c.publish(ctx, data); err != nil {
		return switchboard.Envelope{}, fmt.Errorf("redisconn: sending join: %w", err)
	}

	for {
		item, err := c.next(ctx)
		if err != nil {
			return switchboard.Envelope{}, fmt.Errorf("redisconn: waiting for welcome: %w", err)
		}
		m, ok := item.(*redis.Message)
		if !ok || m.Channel != c.reply {
			// The peer channel before the welcome: an earlier connection's
			// messages, which the broker publishes again after it.
			continue
		}
		var env switchboard.Envelope
		if err := json.Unmarshal([]byte(m.Payload), &env); err != nil {
			return switchboard.Envelope{}, fmt.Errorf("redisconn: malformed answer to the join: %w", err)
		}
		switch env.Type {
		case switchboard.TypeWelcome:
		case switchboard.TypeError:
			return switchboard.Envelope{}, env.Err()
		default:
			return switchboard.Envelope{}, fmt.Errorf("redisconn: broker answered join with %q", env.Type)
		}
		var w switchboard.Welcome
		if err := env.Decode(&w); err != nil || w.Session == "" || w.Peer == "" {
			return switchboard.Envelope{}, fmt.Errorf("redisconn: malformed welcome: %s", env.Payload)
		}
		room := env.Room
		if room == "" {
			room = join.Room
		}
		c.session = w.Session
		if ch := c.peerChannel(room, w.Peer); ch != c.peerChan {
			// The broker chose the id: listen now. It publishes nothing
			// there until someone does.
			c.peerChan = ch
			if err := c.ps.Subscribe(ctx, ch); err != nil {
				return switchboard.Envelope{}, fmt.Errorf("redisconn: subscribing: %w", err)
			}
		}
		return env, nil
	}
}

func (c *conn) peerChannel(room, peer string) string {
	return c.prefix + ":peer:" + room + ":" + peer
}

// confirmed waits until Redis has confirmed the subscription to every one of
// channels.
func (c *conn) confirmed(ctx context.Context, channels []string) error {
	want := make(map[string]bool, len(channels))
	for _, ch := range channels {
		want[ch] = true
	}
	for len(want) > 0 {
		item, err := c.next(ctx)
		if err != nil {
			return fmt.Errorf("redisconn: subscribing: %w", err)
		}
		if s, ok := item.(*redis.Subscription); ok && s.Kind == "subscribe" {
			delete(want, s.Channel)
		}
	}
	return nil
}

// read takes what the pub/sub connection carries into the queue until the
// connection fails or is closed. It never subscribes again: a new connection
// would have missed what was published meanwhile.
func (c *conn) read() {
	defer close(c.readerDone)
	ctx := context.Background()
	pinged := false
	for {
		msg, err := c.ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err = c.ps.Ping(ctx); err == nil {
					pinged = true
					continue
				}
			} else if errors.As(err, &ne) && ne.Timeout() {
				err = errors.New("redis did not answer a ping")
			}
			c.fail(err)
			return
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			c.lastHeard.Store(time.Now().UnixNano())
			c.push(m)
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				c.fail(fmt.Errorf("unexpected %s of %s", m.Kind, m.Channel))
				return
			}
			c.push(m)
		}
	}
}

func (c *conn) push(item any) {
	c.mu.Lock()
	c.queue = append(c.queue, item)
	c.mu.Unlock()
	c.poke()
}

func (c *conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fail records why reading ended.
func (c *conn) fail(err error) {
	select {
	case <-c.closed:
		err = errClosed
	default:
		err = fmt.Errorf("pub/sub connection: %w", err)
	}
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
	c.poke()
}

// take returns what the reader queued, or why it ended once nothing is left.
func (c *conn) take(all bool) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil, c.readErr
	}
	n := 1
	if all {
		n = len(c.queue)
	}
	items := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return items, nil
}

// next returns the next item the reader queued.
func (c *conn) next(ctx context.Context) (any, error) {
	for {
		items, err := c.take(false)
		if err != nil {
			return nil, err
		}
		if len(items) > 0 {
			return items[0], nil
		}
		select {
		case <-c.wake:
		case <-c.closed:
			return nil, errClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// publish publishes data to P:in until a broker hears it (PUBLISH answers
// more than 0), trying again with backoff while Redis fails or nobody
// listens, until ctx ends or the connection is closed.
func (c *conn) publish(ctx context.Context, data []byte) error {
	delay := publishMin
	for {
		n, err := c.rdb.Publish(ctx, c.in, data).Result()
		if err == nil && n > 0 {
			c.lastPub.Store(time.Now().UnixNano())
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.closed:
			t.Stop()
			return errClosed
		case <-ctx.Done():
			t.Stop()
			if err != nil {
				return fmt.Errorf("%w (publishing: %w)", ctx.Err(), err)
			}
			return fmt.Errorf("%w: %w", errNoBroker, ctx.Err())
		}
		delay = min(delay*2, publishMax)
	}
}

// outbound is an envelope with the session secret that the broker checks
// and strips.
type outbound struct {
	switchboard.Envelope
	Session string `json:"session"`
}

// marshal writes an envelope with the session.
func (c *conn) marshal(env switchboard.Envelope) ([]byte, error) {
	return json.Marshal(outbound{Envelope: env, Session: c.session})
}

// send publishes one envelope with the session, for at most the write
// timeout.
func (c *conn) send(ctx context.Context, env switchboard.Envelope) error {
	data, err := c.marshal(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	return c.publish(ctx, data)
}

// Send publishes the envelopes to P:in, in order, in one round trip to Redis
// while a broker hears them, for at most the write timeout.
func (c *conn) Send(ctx context.Context, envs []switchboard.Envelope) error {
	batch := make([][]byte, len(envs))
	for i, env := range envs {
		data, err := c.marshal(env)
		if err != nil {
			return fmt.Errorf("redisconn: send: %w", err)
		}
		batch[i] = data
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	for len(batch) > 0 {
		if len(batch) > 1 {
			batch = batch[c.publishAll(ctx, batch):]
			if len(batch) == 0 {
				return nil
			}
		}
		// The first that no broker heard goes alone, again and again; the
		// ones after it, which a broker may have heard already, follow it
		// again, and the broker drops the repeats by their ids.
		if err := c.publish(ctx, batch[0]); err != nil {
			return fmt.Errorf("redisconn: send: %w", err)
		}
		batch = batch[1:]
	}
	return nil
}

// publishAll publishes batch to P:in in one pipeline and returns how many of
// it, from the start, a broker heard.
func (c *conn) publishAll(ctx context.Context, batch [][]byte) int {
	cmds, _ := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, data := range batch {
			p.Publish(ctx, c.in, data)
		}
		return nil
	})
	heard := 0
	for _, cmd := range cmds {
		if n, err := cmd.(*redis.IntCmd).Result(); err != nil || n == 0 {
			break
		}
		heard++
	}
	if heard > 0 {
		c.lastPub.Store(time.Now().UnixNano())
	}
	return heard
}

// Recv returns what arrived on the peer channel, in order. It fails when the
// pub/sub connection failed, or when the broker has been silent too long.
func (c *conn) Recv(ctx context.Context) ([]switchboard.Envelope, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		items, err := c.take(true)
		if err != nil {
			return nil, fmt.Errorf("redisconn: %w", err)
		}
		var envs []switchboard.Envelope
		for _, item := range items {
			m, ok := item.(*redis.Message)
			if !ok || m.Channel != c.peerChan {
				continue // a subscription's confirmation, or a stray answer on the reply channel
			}
			var env switchboard.Envelope
			if err := json.Unmarshal([]byte(m.Payload), &env); err != nil {
				return nil, fmt.Errorf("redisconn: malformed envelope from broker: %w", err)
			}
			if env.Type == switchboard.TypePong && pingMarker.Is(env.Payload) {
				continue
			}
			envs = append(envs, env)
		}
		if len(envs) > 0 {
			return envs, nil
		}
		left := time.Until(time.Unix(0, c.lastHeard.Load()).Add(c.silence))
		if left <= 0 {
			return nil, fmt.Errorf("redisconn: no word from the broker for %v", c.silence)
		}
		if timer == nil {
			timer = time.NewTimer(left)
		} else {
			timer.Reset(left)
		}
		select {
		case <-c.wake:
		case <-timer.C:
		case <-c.closed:
			return nil, fmt.Errorf("redisconn: %w", errClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack publishes an ack envelope.
func (c *conn) Ack(ctx context.Context, seq uint64) error {
	payload, _ := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{seq})
	return c.Send(ctx, []switchboard.Envelope{{V: switchboard.Version, Type: switchboard.TypeAck, Payload: payload}})
}

// keepAliveLoop publishes a ping when the connection has published nothing,
// or heard nothing, for the keepalive interval, at most once an interval.
func (c *conn) keepAliveLoop() {
	defer close(c.aliveDone)
	tick := time.NewTicker(min(max(c.keepAlive/10, 50*time.Millisecond), time.Second))
	defer tick.Stop()
	var lastPing time.Time
	payload := pingMarker.Payload()
	ping := switchboard.Envelope{V: switchboard.Version, Type: switchboard.TypePing, Payload: payload}
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		}
		since := func(ns int64) time.Duration { return time.Since(time.Unix(0, ns)) }
		if time.Since(lastPing) < c.keepAlive ||
			(since(c.lastPub.Load()) < c.keepAlive && since(c.lastHeard.Load()) < c.keepAlive) {
			continue
		}
		lastPing = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.keepAlive)
		// A ping that fails leaves the failing to Recv and Send.
		_ = c.send(ctx, ping)
		cancel()
	}
}

// Close publishes leave when leave is set, then closes the connection.
func (c *conn) Close(leave bool) error {
	var err error
	c.closeOnce.Do(func() {
		if leave && c.session != "" {
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
			err = c.send(ctx, switchboard.Envelope{V: switchboard.Version, Type: switchboard.TypeLeave, ID: rand.Text()})
			cancel()
			if err != nil {
				err = fmt.Errorf("redisconn: leave: %w", err)
			}
		}
		close(c.closed)
		if c.ps != nil {
			_ = c.ps.Close()
		}
		<-c.readerDone
		if c.aliveDone != nil {
			<-c.aliveDone
		}
		_ = c.rdb.Close()
	})
	return err
}
