package redis_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// startBoth serves one broker over WebSocket and Redis at once, and returns
// a dialer for each.
func startBoth(t *testing.T, srv *redistest.Server, opts broker.Options) (ws, rd brokertest.Dialer) {
	t.Helper()
	n := startNode(t, srv, opts, redis.Options{})
	return serveWS(t, n.b), redistest.Dial(srv.Client(t), n.prefix)
}

// serveWS serves b over WebSocket until the test ends, and returns a dialer.
func serveWS(t *testing.T, b *broker.Broker) brokertest.Dialer {
	t.Helper()
	tr := websocket.New(websocket.Options{})
	hs := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		hs.Close()
	})
	return transporttest.WebSocket(transporttest.WSURL(hs.URL))
}

// TestRedisAndWebSocketPeers sets up a call between a service on Redis and
// a browser on WebSocket: offer, answer and trickled candidates both ways.
func TestRedisAndWebSocketPeers(t *testing.T) {
	srv := redistest.Start(t)
	wsDial, redisDial := startBoth(t, srv, broker.Options{})
	svc, _ := brokertest.Join(t, redisDial, "call", "svc", "meta", `{"kind":"service"}`)
	browser, w := brokertest.Join(t, wsDial, "call", "browser")
	if len(w.Peers) != 1 || w.Peers[0].Peer != "svc" || string(w.Peers[0].Meta) != `{"kind":"service"}` {
		t.Fatalf("browser's welcome: %+v", w)
	}
	svc.Expect(broker.TypePeerJoined)

	offer := `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"}`
	browser.Send(`{"type":"offer","to":"svc","id":"o1","payload":` + offer + `}`)
	if env := svc.Expect("offer"); env.From != "browser" || string(env.Payload) != offer {
		t.Fatalf("offer to Redis: %s", env.Raw)
	}
	answer := `{"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`
	svc.Send(`{"type":"answer","to":"browser","id":"a1","payload":` + answer + `}`)
	if env := browser.Expect("answer"); env.From != "svc" || string(env.Payload) != answer {
		t.Fatalf("answer to WebSocket: %s", env.Raw)
	}
	const n = 50
	cand := func(from string, i int) string {
		return fmt.Sprintf(`{"candidate":"candidate:%d 1 udp 2122260223 10.0.0.%d 5%04d typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"%s"}`, i, i%250+1, i, from)
	}
	for i := 0; i < n; i++ {
		browser.Send(`{"type":"candidate","to":"svc","payload":` + cand("browser", i) + `}`)
		svc.Send(`{"type":"candidate","to":"browser","payload":` + cand("svc", i) + `}`)
	}
	browser.Send(`{"type":"candidate","to":"svc","payload":null}`)
	svc.Send(`{"type":"candidate","to":"browser","payload":null}`)
	for i := 0; i <= n; i++ {
		want := "null"
		if i < n {
			want = cand("browser", i)
		}
		if env := svc.Expect("candidate"); string(env.Payload) != want {
			t.Fatalf("candidate %d to Redis: %s", i, env.Payload)
		}
		if i < n {
			want = cand("svc", i)
		}
		if env := browser.Expect("candidate"); string(env.Payload) != want {
			t.Fatalf("candidate %d to WebSocket: %s", i, env.Payload)
		}
	}
	svc.Ack()
	browser.Ack()
	browser.Send(`{"type":"bye","to":"svc"}`)
	svc.Expect("bye")
	svc.Send(`{"type":"leave"}`)
	if env := browser.Expect(broker.TypePeerLeft); string(env.Payload) != `{"peer":"svc","reason":"leave"}` {
		t.Fatalf("peer-left: %s", env.Raw)
	}
}

// TestResumeAcrossTransports drops a WebSocket peer and resumes its session
// over Redis, then drops that and resumes over WebSocket again: nothing is
// lost, nothing comes twice, and the other peer sees no peer-left.
func TestResumeAcrossTransports(t *testing.T) {
	srv := redistest.Start(t)
	wsDial, redisDial := startBoth(t, srv, broker.Options{})
	a, _ := brokertest.Join(t, redisDial, "r", "a")
	b, _ := brokertest.Join(t, wsDial, "r", "b")
	a.Expect(broker.TypePeerJoined)
	send := func(from *brokertest.Peer, i int) {
		from.Send(fmt.Sprintf(`{"type":"candidate","to":"b","payload":{"candidate":"c%d"}}`, i))
	}
	expect := func(p *brokertest.Peer, i int) {
		t.Helper()
		if env := p.Expect("candidate"); !strings.Contains(string(env.Payload), fmt.Sprintf(`"c%d"`, i)) {
			t.Fatalf("candidate %d: %s", i, env.Raw)
		}
	}
	send(a, 0)
	expect(b, 0)
	_ = b.Conn.Drop()
	for i := 1; i <= 3; i++ {
		send(a, i)
	}
	// b comes back over Redis.
	b2, w := brokertest.Join(t, redisDial, "r", "b", "resume", fmt.Sprintf(`{"session":%q,"last_seq":%d}`, b.Session, b.Last))
	if !w.Resumed || w.Session != b.Session {
		t.Fatalf("resumed welcome: %+v", w)
	}
	b2.Last = b.Last
	for i := 1; i <= 3; i++ {
		expect(b2, i)
	}
	send(a, 4)
	expect(b2, 4)
	// And back to WebSocket: the Redis side stops publishing.
	_ = b2.Conn.Drop()
	send(a, 5)
	b3, w := brokertest.Join(t, wsDial, "r", "b", "resume", fmt.Sprintf(`{"session":%q,"last_seq":%d}`, b.Session, b2.Last))
	if !w.Resumed {
		t.Fatalf("resumed welcome: %+v", w)
	}
	b3.Last = b2.Last
	expect(b3, 5)
	b3.Send(`{"type":"message","to":"a","payload":"back"}`)
	if env := a.Next(); env.Type != "message" || string(env.Payload) != `"back"` {
		t.Fatalf("a saw %s", env.Raw)
	}
	// And over Redis once more, while the WebSocket is still open: it takes over.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	old, err := redisDial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Drop()
	_ = old.Send(ctx, []byte(`{"type":"join","room":"r","payload":{"peer":"b","resume":{"session":"`+b.Session+`","last_seq":`+fmt.Sprint(b3.Last)+`}}}`))
	if data, err := old.Recv(ctx); err != nil || !strings.Contains(string(data), `"resumed":true`) {
		t.Fatalf("resuming back over Redis: %s %v", data, err)
	}
}
