package redis

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/promreg"
	"github.com/switchboard-rtc/switchboard/internal/redisclient"
)

// Name is the transport's registered name.
const Name = "redis"

// Defaults and limits of the Redis transport (docs/protocol.md, section 3).
const (
	DefaultIdleTimeout = 60 * time.Second // a peer silent this long times out
	// maxReply is the longest reply channel name a join may give.
	maxReply = 256
	// fieldAllowance is what the session field of an envelope, or the reply
	// field of a join, may add to the largest envelope: they are the
	// transport's, not the envelope's, and do not count towards its limit.
	fieldAllowance = 48
	// hardLimit is how many largest envelopes a message on P:in may be before
	// it is dropped unread, like a WebSocket frame past 16 times the limit.
	hardLimit = 16
	// inboxSize is how many envelopes of one peer may wait to be handled;
	// past it, the next is refused with rate-limited.
	inboxSize = 512
	// concurrentJoins bounds the joins handled at once; past it the reader waits.
	concurrentJoins = 64
	// handleTimeout bounds the handling of one envelope (backplane calls included).
	handleTimeout = 10 * time.Second
	// joinArbitration is how long the key that decides which node answers a
	// join lives: long enough for every node to have seen the join.
	joinArbitration = 5 * time.Second
)

func init() {
	broker.Register(Name, func(o Options, shared broker.TransportOptions) (broker.Transport, error) {
		if o.URL == "" && len(o.Addrs) == 0 && !shared.Redis.IsZero() {
			// The cluster's Redis, unless the transport names its own.
			o.URL, o.Addrs, o.MasterName = shared.Redis.URL, shared.Redis.Addrs, shared.Redis.MasterName
		}
		return New(o)
	})
}

// Options configures the transport. The zero value of every field means its default.
type Options struct {
	// ClientOptions names the Redis deployment (url, or addrs for a Cluster
	// or Sentinels). Default: DefaultURL.
	ClientOptions `yaml:",inline"`
	// Prefix starts every channel name: peers publish to Prefix:in and hear
	// on Prefix:peer:<room>:<peer>. Default: DefaultPrefix ("switchboard").
	Prefix string `yaml:"prefix"`
	// IdleTimeout ends, with reason timeout, the session of a peer that has
	// published nothing (not even a ping) for this long. Default: 60 s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Client, if set, is used instead of a client made from ClientOptions;
	// the transport does not close it.
	Client goredis.UniversalClient `yaml:"-"`
}

// Transport serves peers over Redis pub/sub: it reads envelopes from
// Prefix:in and publishes each joined peer's to Prefix:peer:<room>:<peer>.
// Create it with New, then Run it; Ready reports whether it can serve.
// It is safe for concurrent use.
type Transport struct {
	opts    Options
	client  goredis.UniversalClient
	own     bool // the client is ours to close
	cluster bool // PUBLISH counts cannot confirm delivery
	keys    keys

	b        *broker.Broker
	log      *slog.Logger
	m        *metrics
	shared   bool // other nodes read Prefix:in too: joins are arbitrated
	maxEnv   int
	window   int // most envelopes published to a peer and not yet acknowledged
	windowB  int // most bytes of them
	joinSlot chan struct{}
	dropLog  broker.LogLimiter // what a publisher to Prefix:in can make us log is bounded
	joinLog  broker.LogLimiter

	mu       sync.Mutex
	sub      *redisclient.Subscription
	peers    map[string]*peer // by session secret: sessions carried by this transport
	running  bool
	stopping bool
	jobs     sync.WaitGroup // joins in flight
}

var _ broker.Transport = (*Transport)(nil)

// New returns a Redis transport with opts. It makes its Redis client (unless
// opts.Client is set) but does not connect until Run.
func New(opts Options) (*Transport, error) {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	t := &Transport{opts: opts, keys: newKeys(opts.Prefix), peers: make(map[string]*peer), log: slog.Default()}
	if opts.Client != nil {
		t.client = opts.Client
	} else {
		c, err := opts.ClientOptions.NewClient()
		if err != nil {
			return nil, err
		}
		t.client, t.own = c, true
	}
	t.cluster = redisclient.IsCluster(t.client)
	return t, nil
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Options returns the options the transport was made with.
func (t *Transport) Options() Options { return t.opts }

// Ready reports whether the transport can serve: nil while it is running and
// subscribed to Prefix:in, else what is wrong (Redis unreachable, say).
func (t *Transport) Ready() error {
	t.mu.Lock()
	sub, running := t.sub, t.running
	t.mu.Unlock()
	if !running || sub == nil {
		return errors.New("redis: not running")
	}
	return sub.Err()
}

// Run implements broker.Transport: it subscribes to Prefix:in and serves
// peers until ctx ends; then it unsubscribes, stops every session's
// goroutines (the sessions wait out their resume window, as after a dropped
// connection) and returns. A Redis outage does not end it: it subscribes
// again with backoff, and Ready reports the outage meanwhile.
func (t *Transport) Run(ctx context.Context, b *broker.Broker) error {
	bo := b.Options()
	t.mu.Lock()
	if t.running || t.stopping {
		t.mu.Unlock()
		return errors.New("redis: Run called twice")
	}
	t.b = b
	t.log = b.Logger().With("transport", Name)
	t.m = newMetrics(bo.Registerer)
	t.shared = bo.Backplane != nil
	t.maxEnv = bo.MaxEnvelope
	t.window = max(1, min(bo.MailboxMessages/2, 512))
	t.windowB = max(bo.MaxEnvelope, bo.MailboxBytes/2)
	t.joinSlot = make(chan struct{}, concurrentJoins)
	t.sub = redisclient.NewSubscription(t.client, []string{t.keys.in()}, t.log, t.receive)
	t.sub.OnSubscribed = func(again bool) {
		if !again {
			t.log.Info("redis transport listening", "channel", t.keys.in(), "cluster", t.cluster, "shared", t.shared)
		}
	}
	t.running = true
	t.mu.Unlock()

	redisclient.RouteLog(b.Logger())
	t.log.Debug("redis transport subscribing", "channel", t.keys.in())
	t.sub.Start()
	<-ctx.Done()

	t.sub.Close()
	t.mu.Lock()
	t.stopping = true
	t.mu.Unlock()
	t.jobs.Wait()
	t.mu.Lock()
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	for _, p := range peers {
		p.shutdown()
	}
	t.mu.Lock()
	t.running = false
	t.mu.Unlock()
	if t.own {
		_ = t.client.Close()
	}
	return nil
}

// inbound is a message on Prefix:in, as the transport first reads it.
type inbound struct {
	typ        string
	session    string
	hasSession bool // a "session" field was present (a string or not)
	reply      string
	resume     *broker.Resume
	room       string
}

// parseInbound reads what the transport needs of a message before the broker
// sees it: the type, the session, and for a join the reply channel and what
// it resumes. It fails only when data is not a JSON object.
func parseInbound(data []byte) (inbound, bool) {
	var w struct {
		Type    json.RawMessage `json:"type"`
		Session json.RawMessage `json:"session"`
		Room    json.RawMessage `json:"room"`
		Payload json.RawMessage `json:"payload"`
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return inbound{}, false
	}
	if json.Unmarshal(data, &w) != nil {
		// encoding/json stops at 10,000 levels: an envelope nested deeper
		// is still answered, if its session is good, with the broker's refusal.
		return parseDeep(data)
	}
	var in inbound
	_ = json.Unmarshal(w.Type, &in.typ)
	_ = json.Unmarshal(w.Room, &in.room)
	if len(w.Session) > 0 {
		in.hasSession = true
		_ = json.Unmarshal(w.Session, &in.session)
	}
	if in.typ == broker.TypeJoin && len(w.Payload) > 0 && w.Payload[0] == '{' {
		var p struct {
			Reply  json.RawMessage `json:"reply"`
			Resume json.RawMessage `json:"resume"`
		}
		if json.Unmarshal(w.Payload, &p) == nil {
			_ = json.Unmarshal(p.Reply, &in.reply)
			var r broker.Resume
			if len(p.Resume) > 0 && json.Unmarshal(p.Resume, &r) == nil && r.Session != "" {
				in.resume = &r
			}
		}
	}
	return in, true
}

// parseDeep is parseInbound for an object that encoding/json cannot read:
// it takes the type, session and room from its top level, stepping over
// nested values at any depth (the decoder keeps their nesting on the heap,
// not the stack). It fails when data is not a JSON object.
func parseDeep(data []byte) (inbound, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return inbound{}, false
	}
	var in inbound
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return inbound{}, false
		}
		tok, err := dec.Token()
		if err != nil {
			return inbound{}, false
		}
		if key == "session" {
			in.hasSession = true
		}
		switch v := tok.(type) {
		case string:
			switch key {
			case "type":
				in.typ = v
			case "session":
				in.session = v
			case "room":
				in.room = v
			}
		case json.Delim: // an object or array: stepped over
			for depth := 1; depth > 0; {
				tok, err := dec.Token()
				if err != nil {
					return inbound{}, false
				}
				switch tok {
				case json.Delim('{'), json.Delim('['):
					depth++
				case json.Delim('}'), json.Delim(']'):
					depth--
				}
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return inbound{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return inbound{}, false
	}
	return in, true
}

// receive takes one message from Prefix:in. It runs on the subscription's
// goroutine, so it only sorts messages: envelopes of a joined session go to
// that session's handler, joins to a goroutine of their own.
func (t *Transport) receive(msg *goredis.Message) {
	data := []byte(msg.Payload)
	if len(data) > hardLimit*t.maxEnv {
		t.drop("too-large", "message on the input channel is far past the envelope limit", "bytes", len(data))
		return
	}
	in, ok := parseInbound(data)
	if !ok {
		t.drop("malformed", "message on the input channel is not a JSON object")
		return
	}
	if in.hasSession {
		t.mu.Lock()
		p := t.peers[in.session]
		t.mu.Unlock()
		switch {
		case p != nil:
			// A join too: the session answers that it has joined already.
			p.deliver(data, len(in.session))
			return
		case in.typ != broker.TypeJoin:
			t.unknownSession(in)
			return
		}
		// A join with a session this transport does not carry: the field
		// is ignored and the join handled as any other.
	}
	if in.typ != broker.TypeJoin {
		// No session: nobody to answer, and whatever room and peer the
		// envelope names may be spoofed, so nothing is published to them.
		t.drop("unauthorized", "envelope without a session", "type", truncate(in.typ), "room", truncate(in.room))
		return
	}
	if !t.keys.replyOK(in.reply) {
		t.drop("no-reply", "join without a usable reply channel (it must be "+t.keys.replyPrefix()+"<name>, at most 256 bytes)",
			"room", truncate(in.room), "reply", truncate(in.reply))
		return
	}
	select {
	case t.joinSlot <- struct{}{}:
	default:
		t.log.Warn("joins are arriving faster than they are answered; reading waits")
		t.joinSlot <- struct{}{}
	}
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		<-t.joinSlot
		return
	}
	t.jobs.Add(1)
	t.mu.Unlock()
	go func() {
		defer func() {
			<-t.joinSlot
			t.jobs.Done()
			if p := recover(); p != nil {
				t.log.Error("redis join panicked", "panic", p)
			}
		}()
		t.join(data, in)
	}()
}

// unknownSession handles an envelope whose session this transport does not carry.
func (t *Transport) unknownSession(in inbound) {
	// Only a session of this node's: looking one up on another would take
	// it over, from the node whose copy of this message carries it.
	if s, ok := t.b.LocalSession(in.session); ok && (s.Closed() || s.Transport() != Name) {
		// The sender holds the secret of a session that ended, or that now
		// runs over another transport: it proved who it is, so it is told.
		e := broker.Errorf(broker.CodeSessionExpired, "this session is not open over Redis: resume it with a join, or start a new one")
		t.publishOnce(t.keys.peer(s.Room(), s.Peer()), broker.ErrorFrame(e))
		t.drop("unknown-session", "envelope for a session not carried over Redis", "session", s)
		return
	}
	if t.shared {
		// Another node may carry it: every node reads Prefix:in.
		t.m.dropped("unknown-session")
		t.log.Debug("envelope for a session not on this node", "session_id", broker.LogID(in.session))
		return
	}
	t.drop("unauthorized", "envelope with an unknown session", "type", truncate(in.typ), "room", truncate(in.room), "session_id", broker.LogID(in.session))
}

// drop logs and counts a message that nobody can be told about.
func (t *Transport) drop(reason, msg string, args ...any) {
	t.m.dropped(reason)
	t.dropLog.Log(t.log, slog.LevelInfo, msg+"; dropped", append([]any{"reason", reason}, args...)...)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// join admits the peer of a join envelope and starts serving it.
func (t *Transport) join(data []byte, in inbound) {
	ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
	defer cancel()
	joined, err := t.admit(ctx, data, in)
	if errors.Is(err, errNotMine) {
		return
	}
	if err != nil {
		e := broker.AsError(err)
		level := slog.LevelInfo
		if e.Code == broker.CodeInternal {
			level = slog.LevelError
		}
		t.joinLog.Log(t.log, level, "join refused", "code", e.Code, "error", err, "room", truncate(in.room))
		t.publishOnce(in.reply, broker.ErrorFrame(e))
		return
	}
	t.serve(joined, in.reply)
}

// errNotMine means another node answers the join.
var errNotMine = errors.New("redis: another node answers this join")

func (t *Transport) admit(ctx context.Context, data []byte, in inbound) (*broker.Joined, error) {
	if len(data) > t.maxEnv+fieldAllowance+len(in.reply) {
		return nil, broker.Errorf(broker.CodeTooLarge, "envelope is %d bytes, the limit is %d", len(data), t.maxEnv)
	}
	env, err := broker.Decode(data, 0)
	if err != nil {
		return nil, err
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		return nil, err
	}
	// Redis peers have no address: the join rate counts per reply channel.
	req.Client = "redis:" + in.reply
	if t.shared {
		if err := t.arbitrate(ctx, data, in); err != nil {
			return nil, err
		}
	}
	joined, err := t.b.Join(ctx, req)
	if pe := (*broker.Error)(nil); errors.As(err, &pe) && pe.Ref == "" {
		pe.Ref = env.ID
	}
	return joined, err
}

// arbitrate decides, when several nodes read Prefix:in, whether this one
// answers a join. A resume is answered by the node that holds the session;
// any other join by the node that first sets its key.
func (t *Transport) arbitrate(ctx context.Context, data []byte, in inbound) error {
	if in.resume != nil {
		// The node that carries the session answers. Only this node's own
		// sessions are looked at: looking one up on another node would take
		// it over from the node that answers.
		if _, ok := t.b.LocalSession(in.resume.Session); ok {
			return nil
		}
		if bp := t.b.Options().Backplane; bp != nil {
			if members, err := bp.Members(ctx, in.room); err == nil {
				for _, m := range members {
					if m.Session == in.resume.Session {
						return errNotMine
					}
				}
			}
		}
	}
	sum := sha256.Sum256(data)
	ok, err := t.client.SetNX(ctx, t.keys.join(hex.EncodeToString(sum[:])), t.b.Options().NodeID, joinArbitration).Result()
	if err != nil {
		return err
	}
	if !ok {
		return errNotMine
	}
	return nil
}

// serve starts (or, on a resume over Redis, restarts) the goroutines that
// carry a joined session: its welcome goes to reply, then everything else
// to its peer channel.
func (t *Transport) serve(joined *broker.Joined, reply string) {
	s := joined.Session
	for {
		t.mu.Lock()
		if t.stopping {
			t.mu.Unlock()
			return // the session waits, unattached, for a resume
		}
		p := t.peers[s.Secret()]
		if p == nil {
			p = newPeer(t, s)
			t.peers[s.Secret()] = p
			p.startHandler()
		}
		t.mu.Unlock()
		if p.startWriter(joined, reply) {
			return
		}
	}
}

// forget removes p from the transport if it is still there.
func (t *Transport) forget(p *peer) {
	t.mu.Lock()
	if t.peers[p.sess.Secret()] == p {
		delete(t.peers, p.sess.Secret())
	}
	t.mu.Unlock()
}

// publishOnce publishes data to ch, trying again briefly while Redis fails,
// for answers that nobody waits on the other side to retry (a refused join).
func (t *Transport) publishOnce(ch string, data []byte) {
	delay := 20 * time.Millisecond
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), handleTimeout)
		err := t.client.Publish(ctx, ch, data).Err()
		cancel()
		if err == nil || i == 3 {
			if err != nil {
				t.log.Warn("could not publish an answer", "error", err)
			}
			return
		}
		time.Sleep(delay)
		delay *= 4
	}
}

// metrics are the transport's Prometheus collectors.
type metrics struct {
	droppedV *prometheus.CounterVec
	retries  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		droppedV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_redis_dropped_total",
			Help: "Messages on the Redis input channel dropped without an answer, by reason.",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_redis_publish_retries_total",
			Help: "Publishes to a peer channel tried again because Redis failed or nobody was subscribed.",
		}),
	}
	if reg != nil {
		m.droppedV = promreg.Register(reg, m.droppedV)
		m.retries = promreg.Register(reg, m.retries)
	}
	return m
}

func (m *metrics) dropped(reason string) { m.droppedV.WithLabelValues(reason).Inc() }
