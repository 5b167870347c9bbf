package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

var prefixes atomic.Int64

// newPrefix returns a key prefix no other test in this process uses.
func newPrefix() string { return fmt.Sprintf("sbcluster%d", prefixes.Add(1)) }

// wsNode is a broker serving WebSocket, for the cluster tests.
type wsNode struct {
	b    *broker.Broker
	url  string
	dial brokertest.Dialer
	stop func()
}

// startWS serves a broker made with opts over WebSocket until the test ends.
func startWS(t *testing.T, opts broker.Options) *wsNode {
	t.Helper()
	b := broker.New(opts)
	tr := websocket.New(websocket.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Close()
			b.Close(broker.ReasonKicked)
		})
	}
	t.Cleanup(stop)
	url := transporttest.WSURL(srv.URL)
	return &wsNode{b: b, url: url, dial: transporttest.WebSocket(url), stop: stop}
}

// cluster starts two WebSocket nodes, each with its own Redis backplane on srv.
func cluster(t *testing.T, srv *redistest.Server, opts broker.Options) (n1, n2 *wsNode, bp1, bp2 *redis.Backplane) {
	t.Helper()
	prefix := newPrefix()
	bp1 = redistest.NewBackplane(t, srv, prefix, 0)
	bp2 = redistest.NewBackplane(t, srv, prefix, 0)
	o1, o2 := opts, opts
	o1.NodeID, o1.Backplane = "node1", bp1
	o2.NodeID, o2.Backplane = "node2", bp2
	return startWS(t, o1), startWS(t, o2), bp1, bp2
}

func peerNames(w brokertest.Welcome) []string {
	var names []string
	for _, p := range w.Peers {
		names = append(names, p.Peer)
	}
	sort.Strings(names)
	return names
}

// TestBackplaneSuite runs the suite every Backplane passes, the in-memory
// one included, on a Redis backplane shared by the suite's two brokers.
func TestBackplaneSuite(t *testing.T) {
	srv := redistest.Start(t)
	fresh := func(t *testing.T) broker.Backplane { return redistest.NewBackplane(t, srv, newPrefix(), 0) }
	t.Run("Cluster", func(t *testing.T) { brokertest.RunBackplane(t, fresh) })
	t.Run("Contract", func(t *testing.T) { brokertest.RunBackplaneContract(t, fresh) })
}

func TestClusterSignaling(t *testing.T) {
	srv := redistest.Start(t)
	n1, n2, _, _ := cluster(t, srv, broker.Options{Rate: -1})
	a, _ := brokertest.Join(t, n1.dial, "call", "a", "meta", `{"name":"A"}`)
	b, w := brokertest.Join(t, n2.dial, "call", "b")
	if got := peerNames(w); fmt.Sprint(got) != "[a]" || string(w.Peers[0].Meta) != `{"name":"A"}` {
		t.Fatalf("b's welcome across nodes: %+v", w)
	}
	if env := a.Expect(broker.TypePeerJoined); !strings.Contains(string(env.Payload), `"peer":"b"`) {
		t.Fatalf("peer-joined across nodes: %s", env.Raw)
	}
	c, w := brokertest.Join(t, n1.dial, "call", "c")
	if got := peerNames(w); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("c's welcome: %v", got)
	}
	a.Expect(broker.TypePeerJoined)
	b.Expect(broker.TypePeerJoined)

	offer := `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`
	a.Send(`{"type":"offer","to":"b","id":"o1","payload":` + offer + `}`)
	if env := b.Expect("offer"); env.From != "a" || env.Room != "call" || string(env.Payload) != offer {
		t.Fatalf("offer across nodes: %s", env.Raw)
	}
	b.Send(`{"type":"answer","to":"a","payload":{"type":"answer","sdp":"v=0"}}`)
	if env := a.Expect("answer"); env.From != "b" {
		t.Fatalf("answer across nodes: %s", env.Raw)
	}
	const n = 200
	go func() {
		for i := 0; i < n; i++ {
			a.Conn.Send(context.Background(), []byte(fmt.Sprintf(`{"type":"candidate","to":"b","payload":{"candidate":"a%d","sdpMid":"0","sdpMLineIndex":0}}`, i)))
		}
	}()
	for i := 0; i < n; i++ {
		if env := b.Expect("candidate"); !strings.Contains(string(env.Payload), fmt.Sprintf(`"a%d"`, i)) {
			t.Fatalf("candidate %d out of order: %s", i, env.Payload)
		}
		if i%32 == 31 {
			b.Ack()
		}
	}
	b.Send(`{"type":"message","payload":"to all"}`)
	for _, p := range []*brokertest.Peer{a, c} {
		if env := p.Expect("message"); env.From != "b" || env.To != "" {
			t.Fatalf("broadcast across nodes: %s", env.Raw)
		}
	}
	b.Send(`{"type":"leave"}`)
	for _, p := range []*brokertest.Peer{a, c} {
		if env := p.Expect(broker.TypePeerLeft); string(env.Payload) != `{"peer":"b","reason":"leave"}` {
			t.Fatalf("peer-left across nodes: %s", env.Raw)
		}
	}
	// The id is free again, on either node.
	brokertest.Join(t, n1.dial, "call", "b")
}

func TestClusterPeerIDUnique(t *testing.T) {
	srv := redistest.Start(t)
	n1, n2, _, _ := cluster(t, srv, broker.Options{})
	brokertest.Join(t, n1.dial, "r", "a")
	ws, err := n2.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Drop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ws.Send(ctx, []byte(`{"type":"join","room":"r","payload":{"peer":"a"}}`))
	data, err := ws.Recv(ctx)
	if err != nil || !strings.Contains(string(data), `"code":"peer-id-taken"`) {
		t.Fatalf("second a on node 2: %s %v", data, err)
	}
	// Another room is another id space.
	brokertest.Join(t, n2.dial, "other", "a")
}

func TestClusterOfflineHold(t *testing.T) {
	srv := redistest.Start(t)
	n1, n2, _, _ := cluster(t, srv, broker.Options{OfflineHold: 5 * time.Second})
	a, _ := brokertest.Join(t, n1.dial, "r", "a")
	a.Send(`{"type":"offer","to":"late","id":"o1","payload":{"type":"offer","sdp":"x"}}`)
	a.Send(`{"type":"candidate","to":"late","payload":null}`)
	time.Sleep(100 * time.Millisecond)
	late, _ := brokertest.Join(t, n2.dial, "r", "late")
	if env := late.Next(); env.Type != "offer" || env.From != "a" {
		t.Fatalf("held offer, across nodes: %s", env.Raw)
	}
	if env := late.Next(); env.Type != "candidate" || string(env.Payload) != "null" {
		t.Fatalf("held candidate, across nodes: %s", env.Raw)
	}
}

func TestClusterHoldExpires(t *testing.T) {
	srv := redistest.Start(t)
	n1, _, _, _ := cluster(t, srv, broker.Options{OfflineHold: 200 * time.Millisecond})
	a, _ := brokertest.Join(t, n1.dial, "r", "a")
	a.Send(`{"type":"offer","to":"ghost","id":"o1","payload":{"type":"offer","sdp":"x"}}`)
	a.ExpectError("peer-unavailable", "o1")
}

// TestClusterNodeDeath cuts node 2 off from Redis: after its key expires,
// node 1's peers see node 2's peer leave with reason timeout. When the
// partition heals, node 2 claims its peer again and announces it.
func TestClusterNodeDeath(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	prefix := newPrefix()
	const ttl = 600 * time.Millisecond
	bp1 := redistest.NewBackplane(t, srv, prefix, ttl)
	bp2 := redistest.NewBackplane(t, srv, prefix, ttl, proxy.Addr())
	n1 := startWS(t, broker.Options{NodeID: "node1", Backplane: bp1})
	n2 := startWS(t, broker.Options{NodeID: "node2", Backplane: bp2})
	a, _ := brokertest.Join(t, n1.dial, "r", "a")
	b, _ := brokertest.Join(t, n2.dial, "r", "b")
	a.Expect(broker.TypePeerJoined)

	proxy.Cut()
	if !redistest.WaitFor(5*time.Second, func() bool { return bp2.Ready() != nil }) {
		t.Fatal("node 2's backplane did not notice the partition")
	}
	if err := bp1.Ready(); err != nil {
		t.Fatalf("node 1 is not ready: %v", err)
	}
	if env := a.Expect(broker.TypePeerLeft); string(env.Payload) != `{"peer":"b","reason":"timeout"}` {
		t.Fatalf("peer-left of a dead node's peer: %s", env.Raw)
	}
	members, err := bp1.Members(context.Background(), "r")
	if err != nil || len(members) != 1 || members[0].Peer != "a" {
		t.Fatalf("members while node 2 is dead: %+v %v", members, err)
	}

	proxy.Heal()
	if !redistest.WaitFor(10*time.Second, func() bool { return bp2.Ready() == nil }) {
		t.Fatalf("node 2's backplane did not recover: %v", bp2.Ready())
	}
	if env := a.Expect(broker.TypePeerJoined); !strings.Contains(string(env.Payload), `"peer":"b"`) {
		t.Fatalf("b announced again: %s", env.Raw)
	}
	a.Send(`{"type":"message","to":"b","payload":"still there?"}`)
	if env := b.Expect("message"); string(env.Payload) != `"still there?"` {
		t.Fatalf("after the partition: %s", env.Raw)
	}
	b.Send(`{"type":"message","to":"a","payload":"yes"}`)
	a.Expect("message")
}

// TestClusterStaleMembers starts a node under the id of one that crashed
// with a member in a room: the stale member is removed, and the others told.
func TestClusterStaleMembers(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	bp1 := redistest.NewBackplane(t, srv, prefix, 0)
	n1 := startWS(t, broker.Options{NodeID: "node1", Backplane: bp1})
	// A crashed node's leftovers, as its run wrote them; its key has not
	// expired yet, so the member looks alive.
	ghost := broker.Member{Peer: "g", Session: "0123456789abcdef0123456789abcdef", Node: "node9"}
	data, _ := json.Marshal(ghost)
	c := srv.Client(t)
	ctx := context.Background()
	c.HSet(ctx, prefix+":room:r", "g", data)
	c.SAdd(ctx, prefix+":node-rooms:node9", "r")
	c.Set(ctx, prefix+":node:node9", "1", 0)
	c.HSet(ctx, prefix+":nodes", "node9", time.Now().UnixMilli())
	a, w := brokertest.Join(t, n1.dial, "r", "a")
	if got := peerNames(w); fmt.Sprint(got) != "[g]" {
		t.Fatalf("a's welcome: %v", got)
	}
	// The node starts again under its id: what it left behind is removed,
	// and the others told.
	bp9 := redistest.NewBackplane(t, srv, prefix, 0)
	cancel := bp9.Subscribe("node9", func(broker.Event) {})
	defer cancel()
	if env := a.Expect(broker.TypePeerLeft); string(env.Payload) != `{"peer":"g","reason":"timeout"}` {
		t.Fatalf("stale member: %s", env.Raw)
	}
	if m, _ := bp1.Members(ctx, "r"); len(m) != 1 {
		t.Fatalf("members: %+v", m)
	}
}

func TestBackplaneContract(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	bp1 := redistest.NewBackplane(t, srv, prefix, 0)
	bp2 := redistest.NewBackplane(t, srv, prefix, 0)
	ctx := context.Background()
	var mu sync.Mutex
	var got1, got2 []broker.Event
	c1 := bp1.Subscribe("n1", func(ev broker.Event) { mu.Lock(); got1 = append(got1, ev); mu.Unlock() })
	defer c1()
	c2 := bp2.Subscribe("n2", func(ev broker.Event) { mu.Lock(); got2 = append(got2, ev); mu.Unlock() })
	defer c2()
	if !redistest.WaitFor(5*time.Second, func() bool { return bp1.Ready() == nil && bp2.Ready() == nil }) {
		t.Fatalf("not ready: %v %v", bp1.Ready(), bp2.Ready())
	}

	a := broker.Member{Peer: "a", Session: "s-a", Node: "n1", Meta: json.RawMessage(`{"x":1}`)}
	if err := bp1.Claim(ctx, "r", a); err != nil {
		t.Fatal(err)
	}
	if err := bp1.Claim(ctx, "r", a); err != nil {
		t.Fatalf("claiming again with the same session: %v", err)
	}
	err := bp2.Claim(ctx, "r", broker.Member{Peer: "a", Session: "s-other", Node: "n2"})
	if e := broker.AsError(err); e.Code != broker.CodePeerIDTaken {
		t.Fatalf("claim of a taken id: %v", err)
	}
	if err := bp2.Claim(ctx, "r2", broker.Member{Peer: "a", Session: "s-other", Node: "n2"}); err != nil {
		t.Fatalf("same id, other room: %v", err)
	}
	ms, err := bp2.Members(ctx, "r")
	if err != nil || len(ms) != 1 || ms[0].Peer != "a" || ms[0].Node != "n1" || ms[0].Session != "s-a" || string(ms[0].Meta) != `{"x":1}` {
		t.Fatalf("members: %+v %v", ms, err)
	}
	// Releasing with another session does nothing.
	_ = bp2.Release(ctx, "r", broker.Member{Peer: "a", Session: "s-other", Node: "n2"})
	if ms, _ := bp1.Members(ctx, "r"); len(ms) != 1 {
		t.Fatalf("released by a stranger: %+v", ms)
	}
	_ = bp1.Release(ctx, "r", a)
	if ms, _ := bp1.Members(ctx, "r"); len(ms) != 0 {
		t.Fatalf("after release: %+v", ms)
	}

	// Events: each node hears the other's, in order, and not its own.
	for i := 0; i < 50; i++ {
		if err := bp1.Publish(ctx, broker.Event{Kind: broker.EventRelay, Node: "n1", Room: "r", Peer: "a", Type: "message", Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	_ = bp2.Publish(ctx, broker.Event{Kind: broker.EventLeft, Node: "n2", Room: "r", Peer: "z", Reason: "leave"})
	if !redistest.WaitFor(5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got2) == 50 && len(got1) == 1 }) {
		t.Fatalf("events: node 1 got %d, node 2 got %d", len(got1), len(got2))
	}
	mu.Lock()
	for i, ev := range got2 {
		if string(ev.Body) != fmt.Sprint(i) || ev.Node != "n1" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if got1[0].Kind != broker.EventLeft || got1[0].Peer != "z" {
		t.Fatalf("node 1 got %+v", got1[0])
	}
	mu.Unlock()

	// A relay to one peer goes to its node only, and fails when it is gone.
	b := broker.Member{Peer: "b", Session: "s-b", Node: "n2"}
	if err := bp2.Claim(ctx, "r", b); err != nil {
		t.Fatal(err)
	}
	if err := bp1.Publish(ctx, broker.Event{Kind: broker.EventRelay, Node: "n1", Room: "r", Peer: "a", To: "b", Type: "offer", Body: []byte("{}")}); err != nil {
		t.Fatalf("relay to b: %v", err)
	}
	err = bp1.Publish(ctx, broker.Event{Kind: broker.EventRelay, Node: "n1", Room: "r", Peer: "a", To: "nobody", Type: "offer", Body: []byte("{}")})
	if e := broker.AsError(err); e.Code != broker.CodePeerUnavailable {
		t.Fatalf("relay to nobody: %v", err)
	}
	if !redistest.WaitFor(5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got2) == 51 }) {
		t.Fatal("directed relay not heard")
	}
	mu.Lock()
	if ev := got2[50]; ev.To != "b" || ev.Type != "offer" {
		t.Fatalf("directed relay: %+v", ev)
	}
	if len(got1) != 1 {
		t.Fatalf("node 1 heard a relay meant for node 2: %+v", got1)
	}
	mu.Unlock()
}
