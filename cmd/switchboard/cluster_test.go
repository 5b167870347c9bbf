package main

import (
	"bytes"
	"context"
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
	env := append([]string{
		"SWITCHBOARD_LISTEN=" + addr,
		"SWITCHBOARD_NODE_ID=" + id,
		"SWITCHBOARD_CLUSTER_REDIS_URL=" + redisURL,
		"SWITCHBOARD_LIMITS_RATE=-1",
		"SWITCHBOARD_LOG_LEVEL=warn",
	}, extra...)
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
