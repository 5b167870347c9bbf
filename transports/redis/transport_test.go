package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

var prefixes atomic.Int64

// newPrefix returns a key prefix no other test in this process uses, so
// that tests sharing a redis-server do not hear each other.
func newPrefix() string { return fmt.Sprintf("sbtest%d", prefixes.Add(1)) }

// node is a broker with a running Redis transport.
type node struct {
	b      *broker.Broker
	tr     *redis.Transport
	prefix string
	stop   func() // stops the transport, then the broker; idempotent
}

// startNode starts a broker made with opts and a Redis transport with topts
// in front of it, until the test ends. The transport's client is made from
// srv's URL unless topts names a client.
func startNode(t *testing.T, srv *redistest.Server, opts broker.Options, topts redis.Options) *node {
	t.Helper()
	if topts.Prefix == "" {
		topts.Prefix = newPrefix()
	}
	if topts.Client == nil && topts.URL == "" && len(topts.Addrs) == 0 {
		topts.URL = srv.URL()
	}
	b := broker.New(opts)
	tr, err := redis.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	if !redistest.WaitFor(10*time.Second, func() bool { return tr.Ready() == nil }) {
		t.Fatalf("transport not ready: %v", tr.Ready())
	}
	n := &node{b: b, tr: tr, prefix: topts.Prefix}
	var stopped atomic.Bool
	n.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		<-done
		b.Close(broker.ReasonKicked)
	}
	t.Cleanup(n.stop)
	return n
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			// A silent Redis peer is detected only by the idle timeout, so
			// it follows the resume window when a test shortens that.
			n := startNode(t, srv, opts, redis.Options{IdleTimeout: opts.ResumeWindow})
			if opts.ResumeWindow > 0 {
				// Peers that wait without sending stay alive as a client
				// does, by pinging; one that is dropped stops.
				return redistest.DialWith(client, n.prefix, redistest.Options{KeepAlive: opts.ResumeWindow / 4})
			}
			return redistest.Dial(client, n.prefix)
		},
	})
}

// gather returns the value of the counter name with label reason in reg.
func gather(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// quiet checks that nothing arrives for p within d, by pinging and
// expecting the pong as the very next envelope.
func quiet(t *testing.T, p *brokertest.Peer, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	p.Send(`{"type":"ping","payload":"quiet?"}`)
	if env := p.Next(); env.Type != broker.TypePong {
		t.Fatalf("%s got %s", p.Name, env.Raw)
	}
}

func TestUnauthorizedEnvelopesAreDropped(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	reg := prometheus.NewRegistry()
	n := startNode(t, srv, broker.Options{Registerer: reg}, redis.Options{})
	d := redistest.Dial(client, n.prefix)
	alice, _ := brokertest.Join(t, d, "r", "alice")
	bob, _ := brokertest.Join(t, d, "r", "bob")
	alice.Expect(broker.TypePeerJoined)
	in := n.prefix + ":in"
	ctx := context.Background()
	spoofs := []string{
		// No session, naming alice: nothing may be published to her.
		`{"type":"offer","room":"r","from":"alice","to":"bob","payload":{"type":"offer","sdp":"x"}}`,
		// A wrong session.
		`{"type":"message","room":"r","to":"bob","session":"00000000000000000000000000000000","payload":1}`,
		// A session that is not a string.
		`{"type":"message","to":"bob","session":7,"payload":1}`,
		// A join without a reply channel, and one naming the input channel.
		`{"type":"join","room":"r","payload":{"peer":"mallory"}}`,
		`{"type":"join","room":"r","payload":{"peer":"mallory","reply":"` + in + `"}}`,
		// Joins naming another peer's channel, or an application's: the
		// welcome or the refusal would land there.
		`{"type":"join","room":"r","payload":{"peer":"mallory","reply":"` + n.prefix + `:peer:r:alice"}}`,
		`{"type":"join","room":"r","id":"forged","payload":{"peer":"alice","reply":"` + n.prefix + `:peer:r:bob"}}`,
		`{"type":"join","room":"r","payload":{"peer":"mallory","reply":"` + n.prefix + `:reply:"}}`,
		// Not an envelope at all.
		`not json`,
	}
	for _, s := range spoofs {
		if err := client.Publish(ctx, in, s).Err(); err != nil {
			t.Fatal(err)
		}
	}
	quiet(t, alice, 200*time.Millisecond)
	quiet(t, bob, 0)
	want := map[string]float64{"unauthorized": 3, "no-reply": 5, "malformed": 1}
	for reason, n := range want {
		if got := gather(t, reg, "switchboard_redis_dropped_total", reason); got != n {
			t.Errorf("dropped %s: %v, want %v", reason, got, n)
		}
	}
	// Mallory never joined: the id is free.
	brokertest.Join(t, d, "r", "mallory")
}

func TestSessionFieldIsStripped(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, broker.Options{}, redis.Options{})
	d := redistest.Dial(srv.Client(t), n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Send(`{"type":"message","to":"b","payload":{"k":"v"}}`)
	env := b.Expect("message")
	if strings.Contains(string(env.Raw), "session") || strings.Contains(string(env.Raw), a.Session) {
		t.Fatalf("relayed with the sender's session: %s", env.Raw)
	}
}

func TestEndedSessionIsTold(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	n := startNode(t, srv, broker.Options{}, redis.Options{})
	d := redistest.Dial(client, n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	a.Send(`{"type":"leave"}`)
	// The session is over but its secret is still known for a while: an
	// envelope with it is answered on the peer channel.
	a.Send(`{"type":"ping"}`)
	env := a.Expect(broker.TypeError)
	if !strings.Contains(string(env.Payload), `"session-expired"`) {
		t.Fatalf("got %s", env.Raw)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, broker.Options{}, redis.Options{IdleTimeout: 400 * time.Millisecond})
	d := redistest.Dial(srv.Client(t), n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Expect(broker.TypePeerJoined)
	// a pings more often than the idle timeout and stays; b says nothing and goes.
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		a.Send(`{"type":"ping"}`)
		env := a.Next()
		if env.Type == broker.TypePeerLeft {
			if string(env.Payload) != `{"peer":"b","reason":"timeout"}` {
				t.Fatalf("peer-left: %s", env.Raw)
			}
			if e := time.Since(start); e < 300*time.Millisecond {
				t.Fatalf("b timed out after %v", e)
			}
			time.Sleep(600 * time.Millisecond) // longer than the timeout: a pinged, so a stays
			a.Send(`{"type":"ping"}`)
			a.Expect(broker.TypePong)
			_ = b
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the silent peer did not time out")
}

func TestBrokerChosenPeerID(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, broker.Options{OfflineHold: 5 * time.Second}, redis.Options{})
	d := redistest.Dial(srv.Client(t), n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	// Messages queued for a peer before it can know its channel (right after
	// its welcome) reach it once it subscribes.
	for i := 0; i < 3; i++ {
		a.Send(fmt.Sprintf(`{"type":"message","payload":%d}`, i))
	}
	// Handled in order: once the pong is back, the broadcasts have gone,
	// before the next peer joins.
	a.Send(`{"type":"ping"}`)
	a.Expect(broker.TypePong)
	x, w := brokertest.Join(t, d, "r", "")
	if !strings.HasPrefix(w.Peer, "peer-") {
		t.Fatalf("welcome: %+v", w)
	}
	a.Expect(broker.TypePeerJoined)
	a.Send(`{"type":"offer","to":"` + w.Peer + `","payload":{"type":"offer","sdp":"x"}}`)
	if env := x.Expect("offer"); env.From != "a" {
		t.Fatalf("got %s", env.Raw)
	}
	x.Send(`{"type":"answer","to":"a","payload":{"type":"answer","sdp":"y"}}`)
	a.Expect("answer")
}

func TestWindowWaitsForAcks(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	n := startNode(t, srv, broker.Options{Rate: -1, MailboxMessages: 64}, redis.Options{})
	d := redistest.Dial(client, n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Expect(broker.TypePeerJoined)
	// The window is half the mailbox (32), give or take the one batch that
	// the writer took when it was still open: b does not acknowledge, so
	// publishing stops short of the 60 messages...
	const total = 60
	got := 0
	for i := 0; i < total; i++ {
		a.Send(fmt.Sprintf(`{"type":"message","to":"b","payload":%d}`, i))
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		data, err := b.Conn.Recv(ctx)
		cancel()
		if err != nil {
			break
		}
		var env brokertest.Envelope
		_ = json.Unmarshal(data, &env)
		if string(env.Payload) != fmt.Sprint(got) || env.Seq != b.Last+1 {
			t.Fatalf("message %d: %s", got, data)
		}
		b.Last = env.Seq
		got++
	}
	if got < 32 || got >= total {
		t.Fatalf("%d of %d published without an acknowledgement; want the window, 32, and not all", got, total)
	}
	// ...until it acknowledges.
	b.Ack()
	for i := got; i < total; i++ {
		if env := b.Expect("message"); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %s", i, env.Raw)
		}
		if i%16 == 0 {
			b.Ack()
		}
	}
}

func TestShutdown(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	n := startNode(t, srv, broker.Options{}, redis.Options{})
	d := redistest.Dial(client, n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Send(`{"type":"message","to":"b","payload":1}`)
	b.Expect("message")
	stopped := make(chan struct{})
	go func() { n.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := n.tr.Ready(); err == nil {
		t.Fatal("ready after shutdown")
	}
	// Nobody reads the input channel any more: a peer can tell.
	n2, err := client.Publish(context.Background(), n.prefix+":in", `{"type":"ping"}`).Result()
	if err != nil || n2 != 0 {
		t.Fatalf("input channel still read: %d %v", n2, err)
	}
}

func TestReadyBeforeRun(t *testing.T) {
	tr, err := redis.New(redis.Options{ClientOptions: redis.ClientOptions{URL: "redis://127.0.0.1:1/0"}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Ready() == nil {
		t.Fatal("ready before Run")
	}
	if _, err := redis.New(redis.Options{ClientOptions: redis.ClientOptions{URL: "http://x"}}); err == nil {
		t.Fatal("a non-redis URL was taken")
	}
	both := redis.Options{ClientOptions: redis.ClientOptions{URL: "redis://a:1", Addrs: []string{"a:1"}}}
	if _, err := redis.New(both); err == nil {
		t.Fatal("url and addrs both taken")
	}
}

func TestOptionsYAML(t *testing.T) {
	const text = `
url: redis://user:secret@redis.internal:6380/2
prefix: sig
idle_timeout: 45s
`
	var o redis.Options
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o.URL != "redis://user:secret@redis.internal:6380/2" || o.Prefix != "sig" || o.IdleTimeout != 45*time.Second {
		t.Fatalf("%+v", o)
	}
	var c clusterredis.BackplaneOptions
	dec = yaml.NewDecoder(strings.NewReader("addrs: [a:7000, b:7000]\nmaster_name: main\npassword: p\ntls: true\nnode_ttl: 10s\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Addrs) != 2 || c.MasterName != "main" || c.Password != "p" || !c.TLS || c.NodeTTL != 10*time.Second {
		t.Fatalf("%+v", c)
	}
	dec = yaml.NewDecoder(strings.NewReader("urll: x\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err == nil {
		t.Fatal("an unknown key was taken")
	}
}

func TestRegistered(t *testing.T) {
	tr, err := broker.NewTransport("redis", &redis.Options{ClientOptions: redis.ClientOptions{URL: "redis://127.0.0.1:1/0"}, Prefix: "x"}, broker.TransportOptions{})
	if err != nil || tr.Name() != "redis" {
		t.Fatalf("%v %v", tr, err)
	}
}

// TestClusterRedisDefault: a Redis transport that names no Redis of its own
// takes the cluster's, passed in broker.TransportOptions; one that names its
// own keeps it.
func TestClusterRedisDefault(t *testing.T) {
	shared := broker.TransportOptions{Redis: broker.RedisOptions{URL: "redis://10.0.0.9:6390/2"}}
	tr, err := broker.NewTransport("redis", nil, shared)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.(*redis.Transport).Options().URL; got != shared.Redis.URL {
		t.Fatalf("url %q, want the cluster's", got)
	}
	tr, err = broker.NewTransport("redis", &redis.Options{ClientOptions: redis.ClientOptions{URL: "redis://127.0.0.1:1/0"}}, shared)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.(*redis.Transport).Options().URL; got != "redis://127.0.0.1:1/0" {
		t.Fatalf("url %q, want its own", got)
	}
}

// TestSharedInputChannel runs the Redis transport on two nodes of a cluster
// with one prefix: each join is answered once, by one node, and each
// session's envelopes are handled by the node that holds it.
func TestSharedInputChannel(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	prefix := newPrefix()
	bp1 := redistest.NewBackplane(t, srv, prefix, 0)
	bp2 := redistest.NewBackplane(t, srv, prefix, 0)
	startNode(t, srv, broker.Options{NodeID: "n1", Backplane: bp1}, redis.Options{Prefix: prefix})
	startNode(t, srv, broker.Options{NodeID: "n2", Backplane: bp2}, redis.Options{Prefix: prefix})
	d := redistest.Dial(client, prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Expect(broker.TypePeerJoined)
	for i := 0; i < 20; i++ {
		a.Send(fmt.Sprintf(`{"type":"candidate","to":"b","payload":{"candidate":"c%d"}}`, i))
	}
	for i := 0; i < 20; i++ {
		if env := b.Expect("candidate"); !strings.Contains(string(env.Payload), fmt.Sprintf(`"c%d"`, i)) {
			t.Fatalf("candidate %d: %s", i, env.Raw)
		}
	}
	// One answer per join: nothing else arrives on a's reply channel.
	c, _ := redistest.DialConn(context.Background(), client, prefix)
	defer c.Drop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte(`{"type":"join","room":"r","payload":{"peer":"a"}}`)); err != nil {
		t.Fatal(err)
	}
	data, err := c.Recv(ctx)
	if err != nil || !strings.Contains(string(data), `"peer-id-taken"`) {
		t.Fatalf("second a: %s %v", data, err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if data, err := c.Recv(short); err == nil {
		t.Fatalf("a join answered twice: %s", data)
	}
	// A resume is answered by the node holding the session.
	_ = b.Conn.Drop()
	b2, w := brokertest.Join(t, d, "r", "b", "resume", fmt.Sprintf(`{"session":%q,"last_seq":%d}`, b.Session, b.Last))
	if !w.Resumed {
		t.Fatalf("not resumed: %+v", w)
	}
	b2.Send(`{"type":"message","to":"a","payload":"back"}`)
	if env := a.Expect("message"); string(env.Payload) != `"back"` {
		t.Fatalf("got %s", env.Raw)
	}
}

// TestSharedInboxTakesNothingOver: two nodes read Prefix:in; a Redis peer's
// envelopes, and its resumes, reach both, and the node that does not carry
// its session leaves it alone (looking it up would take it over from the
// other).
func TestSharedInboxTakesNothingOver(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	client := srv.Client(t)
	st := clusterredis.NewStore(client, prefix)
	nodes := make([]*node, 2)
	for i := range nodes {
		bp := redistest.NewBackplane(t, srv, prefix, 0)
		nodes[i] = startNode(t, srv, broker.Options{NodeID: fmt.Sprint("n", i), Backplane: bp, Store: st, Rate: -1},
			redis.Options{Prefix: prefix})
	}
	d := redistest.Dial(client, prefix)
	p, w := brokertest.Join(t, d, "r", "svc")
	for i := range 30 {
		p.Send(fmt.Sprintf(`{"type":"ping","payload":%d}`, i))
		if env := p.Expect(broker.TypePong); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("pong %d: %s", i, env.Raw)
		}
	}
	carriers := func() int {
		n := 0
		for _, nd := range nodes {
			if s, ok := nd.b.LocalSession(w.Session); ok && !s.Closed() && s.Transport() == redis.Name {
				n++
			}
		}
		return n
	}
	if n := carriers(); n != 1 {
		t.Fatalf("%d nodes carry the session", n)
	}
	// The peer resumes (its subscription was restored, say): the node that
	// carries the session answers, and only it.
	for round := range 5 {
		p2, w2 := brokertest.Join(t, d, "r", "svc", "resume", fmt.Sprintf(`{"session":%q,"last_seq":%d}`, w.Session, p.Last))
		if !w2.Resumed {
			t.Fatalf("round %d: not resumed: %+v", round, w2)
		}
		for i := range 10 {
			p2.Send(fmt.Sprintf(`{"type":"ping","payload":%d}`, i))
			if env := p2.Expect(broker.TypePong); string(env.Payload) != fmt.Sprint(i) {
				t.Fatalf("round %d, pong %d: %s", round, i, env.Raw)
			}
		}
		if n := carriers(); n != 1 {
			t.Fatalf("round %d: %d nodes carry the session", round, n)
		}
		p = p2
	}
}

// An envelope nested deeper than any JSON reader goes, with a good session,
// is refused to its sender, not dropped unheard; the session goes on.
func TestDeepEnvelopeRefused(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, broker.Options{}, redis.Options{})
	d := redistest.Dial(srv.Client(t), n.prefix)
	a, _ := brokertest.Join(t, d, "r", "a")
	deep := strings.Repeat("[", 12000) + strings.Repeat("]", 12000)
	a.Send(`{"type":"message","id":"deep","payload":` + deep + `}`)
	a.ExpectError("bad-request", "deep")
	a.Send(`{"type":"ping","payload":"after"}`)
	if env := a.Expect(broker.TypePong); string(env.Payload) != `"after"` {
		t.Fatalf("pong: %s", env.Raw)
	}
}
