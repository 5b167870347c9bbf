package redisconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/clients/go/redisconn"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// Transports of the tests' own, registered once for the test binary.
const (
	tenantTransport    = "redis-test-tenant"    // prefix "tenant"
	keepAliveTransport = "redis-test-keepalive" // pings after 200 ms of quiet
)

func init() {
	switchboard.RegisterTransport(tenantTransport, redisconn.NewDialFunc(redisconn.Config{Prefix: "tenant"}))
	switchboard.RegisterTransport(keepAliveTransport, redisconn.NewDialFunc(redisconn.Config{KeepAlive: 200 * time.Millisecond}))
}

// setup is what a test broker differs in.
type setup struct {
	broker broker.Options
	redis  redis.Options // Client is set by start
}

// node is a broker in the process serving WebSocket and long-polling over
// HTTP and the Redis transport on a redis-server of the test's own.
type node struct {
	redis    *redistest.Server
	RedisURL string // redis://127.0.0.1:port/0
	URL      string // the broker's HTTP base URL
	Broker   *broker.Broker
}

func start(t *testing.T, s setup) *node {
	t.Helper()
	srv := redistest.Start(t)
	return startOn(t, srv, s)
}

// startOn runs a broker on srv; it stops when the test ends.
func startOn(t *testing.T, srv *redistest.Server, s setup) *node {
	t.Helper()
	s.redis.Client = srv.Client(t)
	rt, err := redis.New(s.redis)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := testbroker.Start(testbroker.Options{Broker: s.broker, Transports: []broker.Transport{rt}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	if !redistest.WaitFor(10*time.Second, func() bool { return rt.Ready() == nil }) {
		t.Fatalf("the Redis transport is not ready: %v", rt.Ready())
	}
	return &node{redis: srv, RedisURL: srv.URL(), URL: tb.URL, Broker: tb.Broker}
}

// dial joins room as peer (the broker picks an id when it is empty) and
// closes the client when the test ends.
func dial(t *testing.T, url, transport, room, peer string, tweak ...func(*switchboard.Options)) *switchboard.Client {
	t.Helper()
	opts := switchboard.Options{
		Room: room, Peer: peer, Transport: transport,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		PollWait: 5 * time.Second,
	}
	for _, f := range tweak {
		f(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := switchboard.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("%s joining %s over %s: %v", peer, room, transport, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns c's next envelope of type typ, skipping the others.
func next(t *testing.T, c *switchboard.Client, typ string) switchboard.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		env, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s waiting for %s: %v (client: %v)", c.Peer(), typ, err, c.Err())
		}
		if env.Type == typ {
			return env
		}
	}
}

// text is the payload of a test message.
type text struct {
	Text string `json:"text"`
}

func sendText(t *testing.T, from *switchboard.Client, to, s string) {
	t.Helper()
	if err := from.SendMessage(context.Background(), to, text{s}); err != nil {
		t.Fatal(err)
	}
}

// expectText reads c's next message and checks its sender and text.
func expectText(t *testing.T, c *switchboard.Client, from, want string) {
	t.Helper()
	env := next(t, c, switchboard.TypeMessage)
	var got text
	if err := env.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if env.From != from || got.Text != want {
		t.Fatalf("%s got %q from %s, want %q from %s", c.Peer(), got.Text, env.From, want, from)
	}
}

// A Go client on Redis and one on WebSocket (and one on long-polling, and
// one on Redis whose id the broker picks) are in one room and swap
// envelopes of every kind, many of them, and see each other leave.
func TestRedisAndWebSocketSwap(t *testing.T) {
	// A small mailbox makes the broker wait for acks: it publishes at most
	// 128 messages ahead of the last. (A burst past the mailbox would end
	// the session as a slow consumer.)
	n := start(t, setup{broker: broker.Options{MailboxMessages: 256}})
	alice := dial(t, n.RedisURL, "redis", "swap", "alice")
	if len(alice.Peers()) != 0 || alice.Peer() != "alice" || alice.Session() == "" {
		t.Fatalf("alice: peer %q, session %q, peers %v", alice.Peer(), alice.Session(), alice.Peers())
	}
	bob := dial(t, n.URL, "websocket", "swap", "bob")
	if p := bob.Peers(); len(p) != 1 || p[0].Peer != "alice" {
		t.Fatalf("bob's welcome lists %v", p)
	}
	if env := next(t, alice, switchboard.TypePeerJoined); env.From != "" && env.From != "bob" {
		t.Fatalf("peer-joined: %+v", env)
	}
	anon := dial(t, n.RedisURL, "redis", "swap", "")
	if !strings.HasPrefix(anon.Peer(), "peer-") {
		t.Fatalf("the broker's choice of id: %q", anon.Peer())
	}
	carol := dial(t, n.URL, "longpoll", "swap", "carol")

	ctx := context.Background()
	sd := switchboard.SessionDescription{SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}
	if err := bob.SendOffer(ctx, "alice", sd); err != nil {
		t.Fatal(err)
	}
	offer := next(t, alice, switchboard.TypeOffer)
	if got, err := offer.Description(); err != nil || offer.From != "bob" || got.SDP != sd.SDP || got.Type != "offer" {
		t.Fatalf("offer over Redis: %+v (%v)", offer, err)
	}
	if err := alice.SendAnswer(ctx, "bob", sd); err != nil {
		t.Fatal(err)
	}
	if env := next(t, bob, switchboard.TypeAnswer); env.From != "alice" {
		t.Fatalf("answer over WebSocket: %+v", env)
	}
	mid := "0"
	if err := alice.SendCandidate(ctx, "bob", &switchboard.ICECandidateInit{Candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", SDPMid: &mid}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendCandidate(ctx, "bob", nil); err != nil {
		t.Fatal(err)
	}
	if c, err := next(t, bob, switchboard.TypeCandidate).Candidate(); err != nil || c == nil || c.Candidate == "" {
		t.Fatalf("candidate: %+v %v", c, err)
	}
	if c, err := next(t, bob, switchboard.TypeCandidate).Candidate(); err != nil || c != nil {
		t.Fatalf("end of candidates: %+v %v", c, err)
	}

	// The peer whose id the broker chose hears on its channel too.
	sendText(t, anon, "carol", "from the anonymous service")
	expectText(t, carol, anon.Peer(), "from the anonymous service")
	sendText(t, carol, anon.Peer(), "to the anonymous service")
	expectText(t, anon, "carol", "to the anonymous service")

	// To the whole room.
	sendText(t, bob, "", "to everyone")
	expectText(t, alice, "bob", "to everyone")
	expectText(t, anon, "bob", "to everyone")
	expectText(t, carol, "bob", "to everyone")

	// Many, both ways at once: more than the broker's window, so acks must
	// flow, and fewer than the mailbox holds.
	const count = 200
	var wg sync.WaitGroup
	for _, pair := range [][2]*switchboard.Client{{bob, alice}, {alice, bob}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range count {
				if err := pair[0].SendMessage(ctx, pair[1].Peer(), text{fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range count {
		expectText(t, alice, "bob", fmt.Sprint(i))
		expectText(t, bob, "alice", fmt.Sprint(i))
	}
	wg.Wait()

	// A refusal comes back as an error envelope.
	if err := alice.SendMessage(ctx, "alice", text{"?"}); err != nil {
		t.Fatal(err)
	}
	var pe *switchboard.Error
	if env := next(t, alice, switchboard.TypeError); !errors.As(env.Err(), &pe) || pe.Code != switchboard.CodeBadRequest {
		t.Fatalf("message to oneself: %s", env.Payload)
	}

	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	var left switchboard.PeerLeft
	if err := next(t, bob, switchboard.TypePeerLeft).Decode(&left); err != nil || left.Peer != "alice" || left.Reason != "leave" {
		t.Fatalf("peer-left: %+v %v", left, err)
	}
	if err := anon.Close(); err != nil {
		t.Fatal(err)
	}
	for left.Peer != anon.Peer() {
		if err := next(t, carol, switchboard.TypePeerLeft).Decode(&left); err != nil || left.Reason != "leave" {
			t.Fatalf("peer-left: %+v %v", left, err)
		}
	}
}

// Refusals of the join come back from Dial as the broker's *Error; a URL of
// the wrong kind and a Redis without a broker fail.
func TestDialErrors(t *testing.T) {
	n := start(t, setup{})
	dial(t, n.RedisURL, "redis", "taken", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pe *switchboard.Error
	_, err := switchboard.Dial(ctx, n.RedisURL, switchboard.Options{Room: "taken", Peer: "alice", Transport: "redis"})
	if !errors.As(err, &pe) || pe.Code != switchboard.CodePeerIDTaken {
		t.Fatalf("joining with a taken id: %v", err)
	}
	_, err = switchboard.Dial(ctx, n.RedisURL, switchboard.Options{Room: "bad room!", Transport: "redis"})
	if !errors.As(err, &pe) || pe.Code != switchboard.CodeBadRequest {
		t.Fatalf("joining a malformed room: %v", err)
	}
	if _, err = switchboard.Dial(ctx, n.URL, switchboard.Options{Room: "r", Transport: "redis"}); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("dialing an http URL over Redis: %v", err)
	}
	// No broker reads the tenant prefix on this Redis.
	start := time.Now()
	_, err = switchboard.Dial(ctx, n.RedisURL, switchboard.Options{Room: "r", Transport: tenantTransport, HandshakeTimeout: 300 * time.Millisecond})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no broker") {
		t.Fatalf("joining with no broker: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("joining with no broker took %v", d)
	}
}

// A transport registered with a prefix of its own reaches a broker on that
// prefix.
func TestPrefix(t *testing.T) {
	n := start(t, setup{redis: redis.Options{Prefix: "tenant"}})
	svc := dial(t, n.RedisURL, tenantTransport, "p", "svc")
	web := dial(t, n.URL, "websocket", "p", "web")
	sendText(t, web, "svc", "hello tenant")
	expectText(t, svc, "web", "hello tenant")
	sendText(t, svc, "web", "hello web")
	expectText(t, web, "svc", "hello web")
}

// states records a Client's state changes.
type states struct {
	mu  sync.Mutex
	all []switchboard.State
}

func (s *states) add(st switchboard.State) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
}

func (s *states) count(st switchboard.State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.all {
		if x == st {
			n++
		}
	}
	return n
}

// When the network between a Redis client and Redis is cut, the client
// reconnects once it heals and resumes its session: what was sent to it
// meanwhile arrives, and what it sent meanwhile goes out, each once and in
// order.
func TestResumeAfterCut(t *testing.T) {
	n := start(t, setup{})
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprint("named=", named), func(t *testing.T) {
			room := fmt.Sprint("cut-", named)
			px := redistest.NewProxy(t, n.redis.Addr())
			var st states
			id := ""
			if named {
				id = "svc"
			}
			svc := dial(t, "redis://"+px.Addr()+"/0", "redis", room, id, func(o *switchboard.Options) {
				o.OnStateChange = st.add
			})
			web := dial(t, n.URL, "websocket", room, "web")
			sendText(t, web, svc.Peer(), "before")
			expectText(t, svc, "web", "before")
			session := svc.Session()

			px.Cut()
			if !redistest.WaitFor(10*time.Second, func() bool { return st.count(switchboard.StateReconnecting) == 1 }) {
				t.Fatal("the client did not see the cut")
			}
			const count = 20
			for i := range count {
				sendText(t, web, svc.Peer(), fmt.Sprint("to svc ", i))
				sendText(t, svc, "web", fmt.Sprint("to web ", i))
			}
			time.Sleep(300 * time.Millisecond)
			px.Heal()
			if !redistest.WaitFor(10*time.Second, func() bool { return st.count(switchboard.StateConnected) == 1 }) {
				t.Fatal("the client did not resume")
			}
			for i := range count {
				expectText(t, svc, "web", fmt.Sprint("to svc ", i))
				expectText(t, web, svc.Peer(), fmt.Sprint("to web ", i))
			}
			sendText(t, web, svc.Peer(), "after")
			expectText(t, svc, "web", "after")
			sendText(t, svc, "web", "after")
			expectText(t, web, svc.Peer(), "after")
			if svc.Session() != session || svc.Err() != nil {
				t.Fatalf("session %q, now %q; err %v", session, svc.Session(), svc.Err())
			}
			for _, env := range drain(web) {
				if env.Type == switchboard.TypePeerLeft || env.Type == switchboard.TypePeerJoined {
					t.Fatalf("web saw svc come and go: %+v", env)
				}
			}
		})
	}
}

// When Redis itself dies and comes back (empty), the broker subscribes
// again, and the client reconnects and resumes its session, which the broker
// kept: nothing is lost either way.
func TestResumeAfterRedisRestart(t *testing.T) {
	n := start(t, setup{})
	var st states
	svc := dial(t, n.RedisURL, "redis", "restart", "svc", func(o *switchboard.Options) { o.OnStateChange = st.add })
	web := dial(t, n.URL, "websocket", "restart", "web")
	sendText(t, web, "svc", "before")
	expectText(t, svc, "web", "before")

	n.redis.Stop()
	if !redistest.WaitFor(10*time.Second, func() bool { return st.count(switchboard.StateReconnecting) == 1 }) {
		t.Fatal("the client did not see Redis go")
	}
	sendText(t, web, "svc", "during")
	sendText(t, svc, "web", "during")
	n.redis.Restart()
	if !redistest.WaitFor(20*time.Second, func() bool { return st.count(switchboard.StateConnected) == 1 }) {
		t.Fatal("the client did not resume")
	}
	expectText(t, svc, "web", "during")
	expectText(t, web, "svc", "during")
	sendText(t, web, "svc", "after")
	expectText(t, svc, "web", "after")
}

// drain returns what c has received and not yet been read.
func drain(c *switchboard.Client) []switchboard.Envelope {
	var envs []switchboard.Envelope
	for {
		select {
		case env := <-c.Messages():
			envs = append(envs, env)
		case <-time.After(200 * time.Millisecond):
			return envs
		}
	}
}

// A seq that skips one makes the client resume, and the broker publishes
// again what was missed; a seq already had is dropped.
func TestGapAndRepeat(t *testing.T) {
	n := start(t, setup{})
	var st states
	svc := dial(t, n.RedisURL, "redis", "gap", "svc", func(o *switchboard.Options) { o.OnStateChange = st.add })
	web := dial(t, n.URL, "websocket", "gap", "web")
	next(t, svc, switchboard.TypePeerJoined) // seq 1
	sendText(t, web, "svc", "one")           // seq 2
	expectText(t, svc, "web", "one")

	rdb := n.redis.Client(t)
	ctx := context.Background()
	inject := func(seq uint64, s string) {
		t.Helper()
		payload, _ := json.Marshal(text{s})
		data, _ := json.Marshal(switchboard.Envelope{V: 1, Type: "message", Room: "gap", From: "web", Seq: seq, Payload: payload})
		if err := rdb.Publish(ctx, "switchboard:peer:gap:svc", data).Err(); err != nil {
			t.Fatal(err)
		}
	}
	inject(2, "a repeat of one")
	sendText(t, web, "svc", "two") // seq 3
	expectText(t, svc, "web", "two")

	inject(9, "from the future") // seq 4 to 8 look lost
	if !redistest.WaitFor(10*time.Second, func() bool { return st.count(switchboard.StateConnected) == 1 }) {
		t.Fatal("the client did not resume after the gap")
	}
	sendText(t, web, "svc", "three")
	expectText(t, svc, "web", "three")
	sendText(t, svc, "web", "still here")
	expectText(t, web, "svc", "still here")
	for _, env := range drain(svc) {
		t.Fatalf("svc got more: %s %s", env.Type, env.Payload)
	}
}

// The connection's keepalive keeps a quiet peer within the broker's idle
// timeout; without it (the Client pings only every 25 s) the peer times out.
func TestKeepAlive(t *testing.T) {
	n := start(t, setup{redis: redis.Options{IdleTimeout: time.Second}})
	web := dial(t, n.URL, "websocket", "quiet", "web")
	quiet := dial(t, n.RedisURL, keepAliveTransport, "quiet", "quiet")
	next(t, web, switchboard.TypePeerJoined)
	time.Sleep(3 * time.Second)
	sendText(t, web, "quiet", "still there?")
	expectText(t, quiet, "web", "still there?")
	if envs := drain(web); len(envs) != 0 {
		t.Fatalf("web got %+v", envs)
	}

	dial(t, n.RedisURL, "redis", "quiet", "mute")
	next(t, web, switchboard.TypePeerJoined)
	var left switchboard.PeerLeft
	if err := next(t, web, switchboard.TypePeerLeft).Decode(&left); err != nil || left.Peer != "mute" || left.Reason != "timeout" {
		t.Fatalf("peer-left: %+v %v", left, err)
	}
}
