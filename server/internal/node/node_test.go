package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
	"github.com/switchboard-rtc/switchboard/server/internal/node"
	_ "github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	_ "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// startNode runs a node with the built-in defaults on a loopback port.
func startNode(t *testing.T, edit func(*config.Config)) (*node.Node, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Limits.Rate = -1
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.Start(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return n, "http://" + ln.Addr().String()
}

func TestWebSocketAndLongPollPeersNegotiate(t *testing.T) {
	_, base := startNode(t, nil)
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(base)), "call", "browser")
	lp, w := brokertest.Join(t, transporttest.LongPoll(base), "call", "service")
	if len(w.Peers) != 1 || w.Peers[0].Peer != "browser" {
		t.Fatalf("long-poll peer's welcome: %+v", w)
	}
	ws.Expect(broker.TypePeerJoined)

	offer := `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}`
	ws.Send(`{"type":"offer","to":"service","from":"someone-else","payload":` + offer + `}`)
	env := lp.Expect("offer")
	if env.From != "browser" || string(env.Payload) != offer {
		t.Fatalf("offer over long-poll: %s", env.Raw)
	}
	answer := `{"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`
	lp.Send(`{"type":"answer","to":"browser","payload":` + answer + `}`)
	if env := ws.Expect("answer"); env.From != "service" || string(env.Payload) != answer {
		t.Fatalf("answer over websocket: %s", env.Raw)
	}
	for i := 0; i < 8; i++ {
		c := fmt.Sprintf(`{"candidate":"candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0}`, i, 50000+i)
		ws.Send(`{"type":"candidate","to":"service","payload":` + c + `}`)
		lp.Send(`{"type":"candidate","to":"browser","payload":` + c + `}`)
		if env := lp.Expect("candidate"); string(env.Payload) != c {
			t.Fatalf("candidate to long-poll: %s", env.Raw)
		}
		if env := ws.Expect("candidate"); string(env.Payload) != c {
			t.Fatalf("candidate to websocket: %s", env.Raw)
		}
	}
	ws.Send(`{"type":"candidate","to":"service","payload":null}`)
	if env := lp.Expect("candidate"); string(env.Payload) != "null" {
		t.Fatalf("end of candidates: %s", env.Raw)
	}
}

// TestSeqHasNoGaps sends 1,000 messages each way between transports; Peer.Next
// fails on any seq that does not follow the one before.
func TestSeqHasNoGaps(t *testing.T) {
	_, base := startNode(t, nil)
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(base)), "r", "ws")
	lp, _ := brokertest.Join(t, transporttest.LongPoll(base), "r", "lp")
	ws.Expect(broker.TypePeerJoined)
	const n = 1000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ws.Send(fmt.Sprintf(`{"type":"message","to":"lp","payload":%d}`, i))
		}
	}()
	go func() {
		defer wg.Done()
		batch := make([]string, 0, 50)
		for i := 0; i < n; i++ {
			batch = append(batch, fmt.Sprintf(`{"type":"message","to":"ws","payload":%d}`, i))
			if len(batch) == cap(batch) {
				lp.Send("[" + strings.Join(batch, ",") + "]")
				batch = batch[:0]
			}
		}
	}()
	for i := 0; i < n; i++ {
		if env := lp.Expect("message"); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("long-poll peer: message %d is %s", i, env.Payload)
		}
		if env := ws.Expect("message"); string(env.Payload) != fmt.Sprint(i) {
			t.Fatalf("websocket peer: message %d is %s", i, env.Payload)
		}
		if i%32 == 31 {
			ws.Ack()
		}
	}
	wg.Wait()
	// welcome, peer-joined (for ws) and n messages
	if ws.Last != n+2 || lp.Last != n+1 {
		t.Fatalf("last seqs: websocket %d, long-poll %d; want %d and %d", ws.Last, lp.Last, n+2, n+1)
	}
}

func TestCutConnectionResumesExactly(t *testing.T) {
	_, base := startNode(t, nil)
	px := transporttest.NewProxy(t, strings.TrimPrefix(base, "http://"))
	viaProxy := transporttest.WebSocket(transporttest.WSURL("http://" + px.Addr()))
	sender, _ := brokertest.Join(t, transporttest.LongPoll(base), "r", "sender")
	recv, _ := brokertest.Join(t, viaProxy, "r", "recv")
	const before, after = 100, 100
	for i := 0; i < before; i++ {
		sender.Send(fmt.Sprintf(`{"type":"candidate","to":"recv","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	// recv reads half of them, then its TCP connection is cut while the
	// rest are in flight; the sender goes on.
	for i := 0; i < before/2; i++ {
		recv.Expect("candidate")
	}
	px.Cut()
	for i := before; i < before+after; i++ {
		sender.Send(fmt.Sprintf(`{"type":"candidate","to":"recv","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	again, w := brokertest.Join(t, viaProxy, "r", "recv", "resume",
		fmt.Sprintf(`{"session":%q,"last_seq":%d}`, recv.Session, recv.Last))
	if !w.Resumed {
		t.Fatalf("not resumed: %+v", w)
	}
	again.Last = recv.Last
	for i := before / 2; i < before+after; i++ {
		env := again.Expect("candidate")
		if want := fmt.Sprintf(`"c%d"`, i); !strings.Contains(string(env.Payload), want) {
			t.Fatalf("after resume got %s, want %s", env.Payload, want)
		}
	}
	// Nothing more, nothing twice: the next envelope is a fresh one.
	sender.Send(`{"type":"message","to":"recv","payload":"last"}`)
	if env := again.Next(); string(env.Payload) != `"last"` {
		t.Fatalf("extra envelope after resume: %s", env.Raw)
	}
	// The sender saw no peer-left: its stream holds only its own welcome.
	sender.Send(`{"type":"ping"}`)
	if env := sender.Next(); env.Type != broker.TypePong {
		t.Fatalf("sender saw %s", env.Raw)
	}
}

func TestGracefulShutdown(t *testing.T) {
	n, base := startNode(t, nil)
	ws, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(base)), "r", "a")
	lp, _ := brokertest.Join(t, transporttest.LongPoll(base), "r", "b")
	polled := make(chan error, 1)
	go func() {
		_, err := lp.Conn.Recv(context.Background()) // peer-joined? no: b joined last, so this waits
		polled <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	var err error
	for err == nil { // b's peer-joined comes first
		_, _, err = ws.Conn.(*transporttest.WSConn).WS.ReadMessage()
	}
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("websocket peer: want close 1001, got %v", err)
	}
	select {
	case <-polled:
	case <-time.After(3 * time.Second):
		t.Fatal("a waiting long-poll was not answered at shutdown")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestOperationsEndpoints(t *testing.T) {
	_, base := startNode(t, nil)
	a, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(base)), "r", "a")
	b, _ := brokertest.Join(t, transporttest.LongPoll(base), "r", "b")
	a.Send(`{"type":"offer","to":"b","payload":{"type":"offer","sdp":"x"}}`)
	b.Expect("offer")
	a.Send(`{"type":"bogus","id":"q"}`)
	a.ExpectError("unknown-type", "q")
	for path, want := range map[string][]string{
		"/healthz": {"ok"},
		"/readyz":  {"ready"},
		"/metrics": {
			`switchboard_sessions{transport="websocket"} 1`,
			`switchboard_sessions{transport="longpoll"} 1`,
			`switchboard_envelopes_relayed_total{type="offer"} 1`,
			`switchboard_envelopes_refused_total{code="unknown-type",type=""} 1`,
			`switchboard_mailbox_depth`,
			`switchboard_delivery_latency_seconds_count`,
			`process_resident_memory_bytes`,
			`switchboard_ready 1`,
		},
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if resp.StatusCode != 200 || !strings.Contains(string(body), w) {
				t.Errorf("%s: %d, missing %q", path, resp.StatusCode, w)
			}
		}
		if strings.Contains(string(body), a.Session) || strings.Contains(string(body), b.Session) {
			t.Errorf("%s shows a session secret", path)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// TestLogsHoldNoSecrets traces a whole call at debug level with every
// envelope logged, and checks that no token or session secret shows.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	cfg := config.Default()
	cfg.TokenSecret = "log-test-secret"
	cfg.LogEnvelopes = true
	n, err := node.New(cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.Start(ln)
	base := "http://" + ln.Addr().String()
	tokA, _ := broker.NewToken([]byte(cfg.TokenSecret), "r", "a", time.Minute)
	tokB, _ := broker.NewToken([]byte(cfg.TokenSecret), "r", "b", time.Minute)
	a, _ := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(base)), "r", "a", "token", `"`+tokA+`"`)
	b, _ := brokertest.Join(t, transporttest.LongPoll(base), "r", "b", "token", `"`+tokB+`"`)
	a.Send(`{"type":"offer","to":"b","payload":{"type":"offer","sdp":"x"}}`)
	b.Expect("offer")
	b.Send(`{"type":"nonsense"}`)
	b.ExpectError("unknown-type", "")
	joinRefusedWithToken := `{"type":"join","room":"r","payload":{"peer":"c","token":"` + tokA + `"}}`
	b2, _ := transporttest.LongPoll(base)(context.Background())
	_ = b2.Send(context.Background(), []byte(joinRefusedWithToken))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.Shutdown(ctx)
	out := logs.String()
	if !strings.Contains(out, `"msg":"envelope in"`) || !strings.Contains(out, "forbidden") {
		t.Fatalf("the trace is missing: %s", out)
	}
	for _, secret := range []string{tokA, tokB, a.Session, b.Session, cfg.TokenSecret} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log shows a secret %q", secret[:8])
		}
	}
}
