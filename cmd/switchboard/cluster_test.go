package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
)

// The tests here run the compose topology natively: a real redis-server,
// switchboard serve processes in cluster mode, and switchboard peer.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the switchboard binary once for the package's tests.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running switchboard process and its output.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func spawn(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd, out}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", strings.Join(args, " "), out)
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveNode starts a cluster node on redisURL and waits until it is ready.
func serveNode(t *testing.T, redisURL, id string, extra ...string) (*proc, string) {
	t.Helper()
	addr := freeAddr(t)
	env := []string{
		"SWITCHBOARD_LISTEN=" + addr,
		"SWITCHBOARD_NODE_ID=" + id,
		"SWITCHBOARD_LIMITS_RATE=-1",
		"SWITCHBOARD_LOG_LEVEL=warn",
	}
	if redisURL != "" {
		env = append(env, "SWITCHBOARD_CLUSTER_REDIS_URL="+redisURL)
	}
	env = append(env, extra...)
	p := spawn(t, env, "serve")
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never became ready:\n%s", id, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestComposeTopology: Redis, two nodes and the echo bot on node 1, as in
// docker-compose.yml; a peer on node 2 calls the bot across the nodes.
func TestComposeTopology(t *testing.T) {
	srv := redistest.Start(t)
	_, node1 := serveNode(t, srv.URL(), "node1")
	_, node2 := serveNode(t, srv.URL(), "node2")
	bot := spawn(t, nil, "peer", "-url", node1, "-room", "demo", "-peer", "bot", "-echo")
	waitOutput(t, bot, "joined room=demo peer=bot", 10*time.Second)
	caller := spawn(t, nil, "peer", "-url", node2, "-room", "demo", "-peer", "visitor", "-transport", "longpoll",
		"-call", "bot", "-send", "hello across nodes", "-exit-after-message")
	waitOutput(t, caller, `message-received peer=bot text="hello across nodes"`, 30*time.Second)
}

func waitOutput(t *testing.T, p *proc, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func candidate(i int) string {
	return fmt.Sprintf(`{"candidate":"candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0}`, i, 40000+i)
}

// TestClusterNodeKilled: a WebSocket peer on node 1 and a long-poll peer on
// node 2 swap offer, answer and 100 candidates each way in order; a Redis
// transport peer joins the same room; node 1 is SIGKILLed mid-exchange, and
// its peer resumes on node 2 and gets exactly what it missed.
func TestClusterNodeKilled(t *testing.T) {
	srv := redistest.Start(t)
	n1, node1 := serveNode(t, srv.URL(), "node1", "SWITCHBOARD_TRANSPORTS=websocket,longpoll,redis",
		"SWITCHBOARD_CLUSTER_NODE_TTL=3s")
	_, node2 := serveNode(t, srv.URL(), "node2", "SWITCHBOARD_TRANSPORTS=websocket,longpoll,redis",
		"SWITCHBOARD_CLUSTER_NODE_TTL=3s")
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node1)), "call", "ws")
	lp, _ := brokertest.Join(t, transporttest.LongPoll(node2), "call", "lp")
	ws.Expect(broker.TypePeerJoined)

	ws.Send(`{"type":"offer","to":"lp","payload":{"type":"offer","sdp":"v=0 offer"}}`)
	if env := lp.Expect("offer"); env.From != "ws" {
		t.Fatalf("offer: %s", env.Raw)
	}
	lp.Send(`{"type":"answer","to":"ws","payload":{"type":"answer","sdp":"v=0 answer"}}`)
	if env := ws.Expect("answer"); env.From != "lp" {
		t.Fatalf("answer: %s", env.Raw)
	}
	for i := 0; i < 100; i++ {
		ws.Send(`{"type":"candidate","to":"lp","payload":` + candidate(i) + `}`)
		lp.Send(`{"type":"candidate","to":"ws","payload":` + candidate(i) + `}`)
	}
	for i := 0; i < 100; i++ {
		if env := lp.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("lp's candidate %d: %s", i, env.Payload)
		}
		if env := ws.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("ws's candidate %d: %s", i, env.Payload)
		}
	}
	ws.Ack()

	// A peer on the Redis transport joins the same room.
	rp, w := brokertest.Join(t, redistest.DialWith(srv.Client(t), "switchboard", redistest.Options{KeepAlive: time.Second}), "call", "svc")
	if len(w.Peers) != 2 {
		t.Fatalf("the Redis peer's welcome lists %+v", w.Peers)
	}
	ws.Expect(broker.TypePeerJoined)
	lp.Expect(broker.TypePeerJoined)
	rp.Send(`{"type":"message","to":"ws","payload":"from redis"}`)
	if env := ws.Expect("message"); env.From != "svc" {
		t.Fatalf("from the Redis peer: %s", env.Raw)
	}

	// Mid-exchange, node 1 is killed with no goodbye.
	for i := 100; i < 150; i++ {
		lp.Send(`{"type":"candidate","to":"ws","payload":` + candidate(i) + `}`)
	}
	for i := 100; i < 120; i++ {
		if env := ws.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("ws's candidate %d: %s", i, env.Payload)
		}
	}
	if err := n1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = n1.cmd.Wait()
	for i := 150; i < 200; i++ {
		lp.Send(`{"type":"candidate","to":"ws","payload":` + candidate(i) + `}`)
	}
	again, w := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node2)), "call", "ws", "resume",
		fmt.Sprintf(`{"session":%q,"last_seq":%d}`, ws.Session, ws.Last))
	if !w.Resumed {
		t.Fatalf("not resumed on node 2: %+v", w)
	}
	again.Last = ws.Last
	for i := 120; i < 200; i++ {
		if env := again.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("after resume, candidate %d: %s", i, env.Payload)
		}
	}
	lp.Send(`{"type":"message","to":"ws","payload":"after"}`)
	if env := again.Next(); string(env.Payload) != `"after"` {
		t.Fatalf("something extra after resume: %s", env.Raw)
	}
	// Nobody saw ws leave: lp's next envelope is the one ws sends now.
	again.Send(`{"type":"message","to":"lp","payload":"back"}`)
	if env := lp.Next(); string(env.Payload) != `"back"` {
		t.Fatalf("lp saw %s", env.Raw)
	}
	_ = context.Background
}

// TestClusterOnRedisCluster: the two-node exchange across nodes on a
// three-master Redis Cluster.
func TestClusterOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t)
	addrs := "SWITCHBOARD_CLUSTER_REDIS_ADDRS=" + strings.Join(rc.Addrs, ",")
	_, node1 := serveNode(t, "", "node1", addrs)
	n2, node2 := serveNode(t, "", "node2", addrs)
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node1)), "call", "ws")
	lp, w := brokertest.Join(t, transporttest.LongPoll(node2), "call", "lp")
	if len(w.Peers) != 1 || w.Peers[0].Peer != "ws" {
		t.Fatalf("lp's welcome on node 2: %+v", w)
	}
	ws.Expect(broker.TypePeerJoined)
	ws.Send(`{"type":"offer","to":"lp","payload":{"type":"offer","sdp":"v=0 offer"}}`)
	lp.Expect("offer")
	lp.Send(`{"type":"answer","to":"ws","payload":{"type":"answer","sdp":"v=0 answer"}}`)
	ws.Expect("answer")
	for i := 0; i < 100; i++ {
		ws.Send(`{"type":"candidate","to":"lp","payload":` + candidate(i) + `}`)
		lp.Send(`{"type":"candidate","to":"ws","payload":` + candidate(i) + `}`)
	}
	for i := 0; i < 100; i++ {
		if env := lp.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("lp's candidate %d: %s", i, env.Payload)
		}
		if env := ws.Expect("candidate"); string(env.Payload) != candidate(i) {
			t.Fatalf("ws's candidate %d: %s", i, env.Payload)
		}
	}
	// Node 2 dies; lp resumes on node 1 with what it missed.
	ws.Send(`{"type":"message","to":"lp","payload":"while node 2 is down"}`)
	_ = n2.cmd.Process.Signal(syscall.SIGKILL)
	_ = n2.cmd.Wait()
	again, w := brokertest.Join(t, transporttest.LongPoll(node1), "call", "lp", "resume",
		fmt.Sprintf(`{"session":%q,"last_seq":%d}`, lp.Session, lp.Last))
	if !w.Resumed {
		t.Fatalf("not resumed: %+v", w)
	}
	again.Last = lp.Last
	if env := again.Expect("message"); string(env.Payload) != `"while node 2 is down"` {
		t.Fatalf("after resume: %s", env.Raw)
	}
}

// TestRedisRestartMidExchange: redis-server (with an append-only file) is
// stopped and started again while a peer on node 1 sends to a peer on node
// 2; every message is either delivered or refused with an error to its
// sender, and relaying goes on afterwards.
func TestRedisRestartMidExchange(t *testing.T) {
	srv := redistest.StartPersistent(t)
	_, node1 := serveNode(t, srv.URL(), "node1")
	_, node2 := serveNode(t, srv.URL(), "node2")
	a, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node1)), "r", "a")
	b, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node2)), "r", "b")
	a.Expect(broker.TypePeerJoined)

	const n = 150
	notReady := false // /readyz said so while Redis was down
	var mu sync.Mutex
	delivered, refused := map[string]bool{}, map[string]bool{}
	accounted := func() int {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for id := range delivered {
			seen[id] = true
		}
		for id := range refused {
			seen[id] = true
		}
		return len(seen)
	}
	readAll := func(p *brokertest.Peer, into map[string]bool, refusals bool) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			data, err := p.Conn.Recv(ctx)
			cancel()
			if err != nil {
				return
			}
			var env struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			_ = json.Unmarshal(data, &env)
			var e struct{ Ref string }
			var id string
			switch {
			case refusals && env.Type == "error":
				_ = json.Unmarshal(env.Payload, &e)
				id = e.Ref
			case !refusals && env.Type == "message":
				_ = json.Unmarshal(env.Payload, &id)
			}
			if id != "" {
				mu.Lock()
				into[id] = true
				mu.Unlock()
			}
		}
	}
	go readAll(a, refused, true)
	go readAll(b, delivered, false)
	for i := 0; i < n; i++ {
		switch i {
		case 50:
			srv.Stop()
		case 100:
			srv.Restart()
		}
		id := fmt.Sprintf("m%d", i)
		a.Send(fmt.Sprintf(`{"type":"message","to":"b","id":%q,"payload":%q}`, id, id))
		if i >= 50 && i < 100 {
			time.Sleep(60 * time.Millisecond) // Redis is down for 3 s
			if resp, err := http.Get(node1 + "/readyz"); err == nil {
				resp.Body.Close()
				notReady = notReady || resp.StatusCode == http.StatusServiceUnavailable
			}
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for accounted() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var lost []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d", i)
		if !delivered[id] && !refused[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d messages neither delivered nor refused: %v (delivered %d, refused %d)", len(lost), lost, len(delivered), len(refused))
	}
	if !delivered[fmt.Sprintf("m%d", n-1)] {
		t.Fatalf("relaying did not resume after the restart (delivered %d, refused %d)", len(delivered), len(refused))
	}
	if !notReady {
		t.Error("/readyz never answered 503 while Redis was down")
	}
	t.Logf("delivered %d, refused %d of %d", len(delivered), len(refused), n)
}

// TestLongPollAcrossNodes: the requests of one long-poll session land on
// both nodes in turn, as behind a load balancer without sticky sessions,
// and the session neither loses nor repeats a message.
func TestLongPollAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	_, node1 := serveNode(t, srv.URL(), "node1")
	_, node2 := serveNode(t, srv.URL(), "node2")
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node1)), "r", "ws")
	lpc := &transporttest.LPConn{Base: node1}
	lp, _ := brokertest.Join(t, func(context.Context) (brokertest.Conn, error) { return lpc, nil }, "r", "lp")
	ws.Expect(broker.TypePeerJoined)
	for i := 0; i < 30; i++ {
		lpc.Base = []string{node1, node2}[i%2] // the next request goes to the other node
		ws.Send(fmt.Sprintf(`{"type":"message","to":"lp","payload":%d}`, i))
		if env := lp.Expect("message"); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %s", i, env.Raw)
		}
		lpc.Base = []string{node2, node1}[i%2]
		lp.Send(fmt.Sprintf(`{"type":"message","to":"ws","payload":%d}`, i))
		if env := ws.Expect("message"); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("reply %d arrived as %s", i, env.Raw)
		}
	}
}

// TestSecretStaysOnItsTransportAcrossNodes: the secret of a WebSocket
// session on one node, used in a long-poll URL on another, is refused there
// before that node takes the session over, and the WebSocket goes on.
func TestSecretStaysOnItsTransportAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	_, node1 := serveNode(t, srv.URL(), "node1")
	_, node2 := serveNode(t, srv.URL(), "node2")
	ws, w := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node1)), "r", "ws")
	resp, err := http.Get(node2 + "/v1/sessions/" + w.Session + "/messages?after=1&wait=0")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body.String(), `"code":"session-expired"`) {
		t.Fatalf("long-poll GET with a WebSocket session's secret on another node: %d %s, want 404 session-expired", resp.StatusCode, body.String())
	}
	// Had node2 taken the session over, node1 would close the WebSocket
	// (4001) when it hears of the move, before what follows reaches it.
	b, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(node2)), "r", "b")
	ws.Expect(broker.TypePeerJoined)
	b.Send(`{"type":"message","to":"ws","payload":"still yours"}`)
	if env := ws.Expect("message"); string(env.Payload) != `"still yours"` {
		t.Fatalf("message: %s", env.Raw)
	}
	ws.Send(`{"type":"ping","payload":"still"}`)
	if env := ws.Expect(broker.TypePong); string(env.Payload) != `"still"` {
		t.Fatalf("pong: %s", env.Raw)
	}
}
