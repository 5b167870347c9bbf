package websocket_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/origin"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	wstransport "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// start serves a broker made with opts over WebSocket for the test's duration.
func start(t *testing.T, opts broker.Options, wsOpts wstransport.Options) (string, *broker.Broker) {
	t.Helper()
	return startWith(t, opts, wstransport.New(wsOpts))
}

// startWith serves a broker made with opts over tr for the test's duration.
func startWith(t *testing.T, opts broker.Options, tr *wstransport.Transport) (string, *broker.Broker) {
	t.Helper()
	b := broker.New(opts)
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		b.Close(broker.ReasonKicked)
	})
	return transporttest.WSURL(srv.URL), b
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			url, _ := start(t, opts, wstransport.Options{})
			return transporttest.WebSocket(url)
		},
	})
}

// TestConformanceWithoutPoller runs the kit on the reading path of systems
// without a readiness poller: a goroutine per connection.
func TestConformanceWithoutPoller(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			url, _ := startWith(t, opts, wstransport.WithoutPoller(wstransport.New(wstransport.Options{})))
			return transporttest.WebSocket(url)
		},
	})
}

func TestFirstFrameMustBeJoin(t *testing.T) {
	url, _ := start(t, broker.Options{}, wstransport.Options{JoinTimeout: 300 * time.Millisecond})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Silence: after the join timeout the broker says why and closes.
	_, data, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(data), `"code":"bad-request"`) {
		t.Fatalf("got %s, %v", data, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("want close 1008, got %v", err)
	}
}

func TestBinaryFrameRefused(t *testing.T) {
	url, _ := start(t, broker.Options{}, wstransport.Options{})
	d := transporttest.WebSocket(url)
	a, _ := brokertest.Join(t, d, "r", "a")
	if err := a.Conn.(*transporttest.WSConn).WS.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	a.ExpectError("bad-request", "")
	a.Send(`{"type":"ping"}`)
	a.Expect(broker.TypePong)
}

func TestOriginAllowList(t *testing.T) {
	url, _ := start(t, broker.Options{}, wstransport.Options{AllowedOrigins: []string{"https://good.example"}})
	h := map[string][]string{"Origin": {"https://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(url, h); err == nil || resp.StatusCode != 403 {
		t.Fatalf("evil origin: %v %v", resp, err)
	}
	h["Origin"] = []string{"https://good.example"}
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("good origin: %v", err)
	}
	ws.Close()
}

func TestSilentConnectionDropped(t *testing.T) {
	url, _ := start(t, broker.Options{ResumeWindow: 200 * time.Millisecond},
		wstransport.Options{IdleTimeout: 300 * time.Millisecond, PingInterval: time.Hour})
	d := transporttest.WebSocket(url)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	a.Expect(broker.TypePeerJoined)
	// b sends nothing and answers no pings (none are sent): dropped after
	// the idle timeout, then it times out of the room.
	_ = b
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.Send(`{"type":"ping"}`)
		if env := a.Next(); env.Type == broker.TypePeerLeft {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("silent connection was not dropped")
}

func TestSupersededByResume(t *testing.T) {
	url, _ := start(t, broker.Options{}, wstransport.Options{})
	d := transporttest.WebSocket(url)
	a, _ := brokertest.Join(t, d, "r", "a")
	// A second connection resumes a's session while the first is alive (a
	// half-open connection, say): the first is closed.
	a2, w := brokertest.Join(t, d, "r", "a", "resume", `{"session":"`+a.Session+`","last_seq":1}`)
	if !w.Resumed {
		t.Fatal("not resumed")
	}
	if _, _, err := a.Conn.(*transporttest.WSConn).WS.ReadMessage(); !websocket.IsCloseError(err, 4001) {
		t.Fatalf("old connection: %v", err)
	}
	a2.Send(`{"type":"ping"}`)
	a2.Expect(broker.TypePong)
}

func TestShutdownTellsPeers(t *testing.T) {
	b := broker.New(broker.Options{})
	tr := wstransport.New(wstransport.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	url := transporttest.WSURL(srv.URL)
	a, _ := brokertest.Join(t, transporttest.WebSocket(url), "r", "a")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, _, err := a.Conn.(*transporttest.WSConn).WS.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
}

// Same-origin by default trusts neither the Host header alone (a page on a
// name rebound to the broker's address) nor an https page on plain http.
func TestOriginSameOriginOnly(t *testing.T) {
	url, _ := start(t, broker.Options{}, wstransport.Options{})
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/v1/ws"), "ws://")
	for _, h := range []http.Header{
		{"Origin": {"http://evil.example"}, "Host": {"evil.example"}},
		{"Origin": {"https://" + host}},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(url, h)
		if err == nil || resp == nil || resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("origin %s, host %s: %v %v, want a 403 with a JSON error", h.Get("Origin"), h.Get("Host"), resp, err)
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	ws.Close()
	// A public origin, named by the operator, is the broker's own.
	url, _ = start(t, broker.Options{}, wstransport.Options{Origins: origin.Policy{Public: []string{"https://signal.example.com"}}})
	ws, _, err = websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://signal.example.com"}, "Host": {"signal.example.com"}})
	if err != nil {
		t.Fatalf("public origin: %v", err)
	}
	ws.Close()
}

// TestJoinWhileShuttingDown: a join that comes while the broker drains gets
// a shutting-down error, then close 1001: come back, or go to another node.
func TestJoinWhileShuttingDown(t *testing.T) {
	url, b := start(t, broker.Options{}, wstransport.Options{})
	b.Drain()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"r","id":"j1","payload":{"peer":"a"}}`)); err != nil {
		t.Fatal(err)
	}
	_, data, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(data), `"code":"shutting-down"`) || !strings.Contains(string(data), `"ref":"j1"`) {
		t.Fatalf("join while draining: %s, %v; want a shutting-down error", data, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
}

// TestJoinRatePerAddress: a join past the per-address join rate is refused
// with rate-limited.
func TestJoinRatePerAddress(t *testing.T) {
	url, _ := start(t, broker.Options{JoinRate: 0.001, JoinBurst: 2}, wstransport.Options{})
	for i := range 3 {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"join","room":"r","payload":{"peer":"p%d"}}`, i))); err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.ReadMessage()
		if i < 2 && (err != nil || !strings.Contains(string(data), `"welcome"`)) {
			t.Fatalf("join %d: %s %v", i, data, err)
		}
		if i == 2 && !strings.Contains(string(data), `"code":"rate-limited"`) {
			t.Fatalf("join past the join rate: %s %v, want rate-limited", data, err)
		}
	}
}

// TestPingerThatNeverReadsIsEnded: a client that sends pings and never
// reads its pongs is ended as a slow consumer once what waits for it passes
// the mailbox bound, rather than have the broker hold every pong.
func TestPingerThatNeverReadsIsEnded(t *testing.T) {
	url, b := start(t, broker.Options{Rate: -1, MailboxMessages: 64}, wstransport.Options{})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"r","payload":{"peer":"a"}}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, data, err := ws.ReadMessage(); err != nil || !strings.Contains(string(data), `"welcome"`) {
		t.Fatalf("join: %s %v", data, err)
	}
	// From here on the client reads nothing.
	ping := []byte(`{"type":"ping","payload":"` + strings.Repeat("p", broker.MaxPingPayload-2) + `"}`)
	sent := 0
	for ; sent < 100000 && b.Sessions() > 0; sent++ {
		if ws.WriteMessage(websocket.TextMessage, ping) != nil {
			break // the broker closed the connection
		}
	}
	t.Logf("%d pings sent", sent)
	deadline := time.Now().Add(20 * time.Second)
	for b.Sessions() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that pings and never reads was not ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
