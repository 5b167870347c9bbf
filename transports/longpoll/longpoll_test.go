package longpoll_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// start serves a broker made with opts over long-polling for the test's
// duration. The idle timeout follows opts.ResumeWindow when that is set, so
// that the resume tests need not wait a minute.
func start(t *testing.T, opts broker.Options) (string, *broker.Broker) {
	t.Helper()
	b := broker.New(opts)
	tr := longpoll.New(longpoll.Options{IdleTimeout: opts.ResumeWindow})
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
	return srv.URL, b
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			url, _ := start(t, opts)
			return transporttest.LongPoll(url)
		},
	})
}

func request(t *testing.T, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func TestHTTPRefusals(t *testing.T) {
	url, _ := start(t, broker.Options{MaxEnvelope: 1024})
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/sessions", `nope`, 400, "bad-request"},
		{"POST", "/v1/sessions", `{"type":"join","room":"r","payload":{"peer":"` + strings.Repeat("x", 2000) + `"}}`, 413, "too-large"},
		{"POST", "/v1/sessions", `{"type":"offer","room":"r"}`, 400, "bad-request"},
		{"GET", "/v1/sessions/nosuch/messages", ``, 404, "session-expired"},
		{"POST", "/v1/sessions/nosuch/messages", `{"type":"ping"}`, 404, "session-expired"},
		{"DELETE", "/v1/sessions/nosuch", ``, 404, "session-expired"},
	}
	for _, c := range cases {
		resp, body := request(t, c.method, url+c.path, c.body)
		if resp.StatusCode != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
		}
	}
	base := joinLP(t, url, "a")
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/messages", `not json`, 400, "bad-request"},
		{"POST", "/messages", `[{"type":"ping"}, oops]`, 400, "bad-request"},
		{"POST", "/messages", `"` + strings.Repeat("x", 17*1024) + `"`, 413, "too-large"},
		{"GET", "/messages?after=x", ``, 400, "bad-request"},
		{"GET", "/messages?wait=56", ``, 400, "bad-request"},
		{"GET", "/messages?after=99", ``, 400, "bad-request"},
	} {
		resp, body := request(t, c.method, base+c.path, c.body)
		if resp.StatusCode != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, resp.StatusCode, body, c.status, c.code)
		}
	}
	// A batch: two pings, one bad envelope; the bad one is refused in the stream.
	resp, body := request(t, "POST", base+"/messages", `[{"type":"ping","payload":1},{"type":"nope","id":"z"},{"type":"ping","payload":2}]`)
	if resp.StatusCode != 202 || body != `{"accepted":2}` {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	_, body = request(t, "GET", base+"/messages?after=1&wait=0", ``)
	if !strings.Contains(body, `"type":"pong","payload":1`) || !strings.Contains(body, `"ref":"z"`) || !strings.Contains(body, `"type":"pong","payload":2`) {
		t.Fatalf("after batch: %s", body)
	}
	if resp, _ := request(t, "DELETE", base, ``); resp.StatusCode != 204 {
		t.Fatalf("leave: %d", resp.StatusCode)
	}
	if resp, _ := request(t, "POST", base+"/messages", `{"type":"ping"}`); resp.StatusCode != 404 {
		t.Fatalf("poll after leave: %d", resp.StatusCode)
	}
}

func TestPollWaitsAndAcks(t *testing.T) {
	url, _ := start(t, broker.Options{})
	d := transporttest.LongPoll(url)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	base := url + "/v1/sessions/" + b.Session + "/messages"
	start := time.Now()
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.Send(`{"type":"message","to":"b","payload":"wake"}`)
	}()
	_, body := request(t, "GET", base+"?after=1&wait=5", ``)
	if !strings.Contains(body, `"wake"`) || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("poll: %s after %v", body, time.Since(start))
	}
	// Unacknowledged: asked again after=1, it comes again. Acknowledged, it is gone.
	if _, body := request(t, "GET", base+"?after=1&wait=0", ``); !strings.Contains(body, `"wake"`) {
		t.Fatalf("repeat poll: %s", body)
	}
	if _, body := request(t, "GET", base+"?after=2&wait=1", ``); body != "[]" {
		t.Fatalf("empty poll: %s", body)
	}
}

func TestCORS(t *testing.T) {
	b := broker.New(broker.Options{})
	tr := longpoll.New(longpoll.Options{AllowedOrigins: []string{"https://app.example"}})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	defer srv.Close()
	resp, _ := request(t, "OPTIONS", srv.URL+"/v1/sessions", ``, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := request(t, "POST", srv.URL+"/v1/sessions", `{"type":"join","room":"r"}`, "Origin", "https://evil.example")
	if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"code":"forbidden"`) {
		t.Fatalf("evil origin: %d %q %s, want 403 with a JSON forbidden error", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// Same-origin does not trust the Host header alone (DNS rebinding).
	req, _ := http.NewRequest("POST", srv.URL+"/v1/sessions", strings.NewReader(`{"type":"join","room":"r"}`))
	req.Host = "evil.example"
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("rebound name: %d %v, want 403", resp.StatusCode, resp.Header)
	}
}

func TestUnpolledSessionTimesOut(t *testing.T) {
	b := broker.New(broker.Options{})
	tr := longpoll.New(longpoll.Options{IdleTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	defer srv.Close()
	d := transporttest.LongPoll(srv.URL)
	a, _ := brokertest.Join(t, d, "r", "a")
	brokertest.Join(t, d, "r", "b") // never polls
	a.Expect(broker.TypePeerJoined)
	if env := a.Next(); string(env.Payload) != `{"peer":"b","reason":"timeout"}` {
		t.Fatalf("got %s", env.Raw)
	}
}

// joinLP joins peer to room r over long-polling and returns its session's URL.
func joinLP(t *testing.T, url, peer string) string {
	t.Helper()
	resp, body := request(t, "POST", url+"/v1/sessions", `{"type":"join","room":"r","payload":{"peer":"`+peer+`"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("join: %d %s", resp.StatusCode, body)
	}
	var w struct {
		Payload struct{ Session string }
	}
	_ = json.Unmarshal([]byte(body), &w)
	return url + "/v1/sessions/" + w.Payload.Session
}

// A session that left answers every later poll with 404 session-expired,
// whatever seq the poll names.
func TestDeletedSessionPollsExpire(t *testing.T) {
	url, _ := start(t, broker.Options{})
	base := joinLP(t, url, "a")
	if resp, body := request(t, "GET", base+"/messages?wait=0", ``); resp.StatusCode != 200 || !strings.Contains(body, `"welcome"`) {
		t.Fatalf("first poll: %d %s", resp.StatusCode, body)
	}
	if resp, _ := request(t, "DELETE", base, ``); resp.StatusCode != 204 {
		t.Fatalf("leave: %d", resp.StatusCode)
	}
	for _, q := range []string{"", "?after=1", "?after=0&wait=0", "?after=1&wait=5"} {
		resp, body := request(t, "GET", base+"/messages"+q, ``)
		if resp.StatusCode != 404 || !strings.Contains(body, `"code":"session-expired"`) {
			t.Errorf("GET messages%s after leave: %d %s, want 404 session-expired", q, resp.StatusCode, body)
		}
	}
	if resp, _ := request(t, "DELETE", base, ``); resp.StatusCode != 404 {
		t.Errorf("second leave: %d, want 404", resp.StatusCode)
	}
}

// A session the broker ended (here: kicked) can still be polled for its
// last messages, then answers 404 session-expired.
func TestEndedSessionGivesItsLastMessages(t *testing.T) {
	url, b := start(t, broker.Options{})
	base := joinLP(t, url, "a")
	id := base[strings.LastIndex(base, "/")+1:]
	s, ok := b.Session(id)
	if !ok {
		t.Fatal("no session")
	}
	s.Close(broker.ReasonKicked)
	resp, body := request(t, "GET", base+"/messages?after=0&wait=0", ``)
	if resp.StatusCode != 200 || !strings.Contains(body, `"welcome"`) {
		t.Fatalf("poll of an ended session: %d %s, want its welcome", resp.StatusCode, body)
	}
	resp, body = request(t, "GET", base+"/messages?after=1&wait=5", ``)
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":"session-expired"`) {
		t.Fatalf("poll past the end: %d %s, want 404 session-expired", resp.StatusCode, body)
	}
}

// One envelope nested past the limit, in an array, is refused on its own;
// the others are handled.
func TestDeepEnvelopeInArrayRefusedAlone(t *testing.T) {
	url, _ := start(t, broker.Options{})
	base := joinLP(t, url, "a")
	deep := `{"type":"message","id":"deep","payload":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	resp, body := request(t, "POST", base+"/messages", `[{"type":"ping","payload":1}, `+deep+` ,{"type":"ping","payload":2}]`)
	if resp.StatusCode != 202 || body != `{"accepted":2}` {
		t.Fatalf("batch with a deep envelope: %d %s, want 202 {\"accepted\":2}", resp.StatusCode, body)
	}
	_, body = request(t, "GET", base+"/messages?after=1&wait=0", ``)
	if !strings.Contains(body, `"type":"pong","payload":1`) || !strings.Contains(body, `"code":"bad-request"`) || !strings.Contains(body, `"type":"pong","payload":2`) {
		t.Fatalf("after the batch: %s", body)
	}
	// Broken syntax still fails the whole body.
	for _, bad := range []string{
		`[` + deep + `, oops]`,
		`[` + deep + `} ]`,
		`[` + deep + `] x`,
		`[` + strings.Repeat("[", 2000),
	} {
		if resp, body := request(t, "POST", base+"/messages", bad); resp.StatusCode != 400 {
			t.Errorf("broken deep body: %d %s, want 400", resp.StatusCode, body)
		}
	}
}

// A session secret is honoured only on the transport that carries the
// session: a WebSocket session's secret polled over long-polling answers
// session-expired and leaves the WebSocket alone.
func TestSecretOfAnotherTransportRefused(t *testing.T) {
	b := broker.New(broker.Options{TokenSecret: []byte("k")})
	lp := longpoll.New(longpoll.Options{})
	ws := websocket.New(websocket.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, lp, ws).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = lp.Run(ctx, b); done <- struct{}{} }()
	go func() { _ = ws.Run(ctx, b); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done; srv.Close(); b.Close(broker.ReasonKicked) })

	tok, err := broker.NewToken([]byte("k"), "r", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a, wa := brokertest.Join(t, transporttest.WebSocket(transporttest.WSURL(srv.URL)), "r", "a", "token", `"`+tok+`"`)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/messages?after=1&wait=0", ``},
		{"POST", "/messages", `{"type":"message","to":"a","payload":"x"}`},
		{"DELETE", "", ``},
	} {
		resp, body := request(t, c.method, srv.URL+"/v1/sessions/"+wa.Session+c.path, c.body)
		if resp.StatusCode != 404 || !strings.Contains(body, `"code":"session-expired"`) {
			t.Errorf("%s with a WebSocket session's secret: %d %s, want 404 session-expired", c.method, resp.StatusCode, body)
		}
	}
	// The WebSocket is still the session's: a ping is answered.
	a.Send(`{"type":"ping","payload":"still"}`)
	if env := a.Expect(broker.TypePong); string(env.Payload) != `"still"` {
		t.Fatalf("pong: %s", env.Raw)
	}
	// Moving the session to long-polling takes a resume join, with its token.
	resp, body := request(t, "POST", srv.URL+"/v1/sessions", `{"type":"join","room":"r","payload":{"peer":"a","resume":{"session":"`+wa.Session+`","last_seq":1}}}`)
	if resp.StatusCode != 401 {
		t.Fatalf("resume without a token: %d %s, want 401", resp.StatusCode, body)
	}
	resp, body = request(t, "POST", srv.URL+"/v1/sessions", `{"type":"join","room":"r","payload":{"peer":"a","token":"`+tok+`","resume":{"session":"`+wa.Session+`","last_seq":1}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("resume with a token: %d %s, want 200", resp.StatusCode, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body = request(t, "GET", srv.URL+"/v1/sessions/"+wa.Session+"/messages?after=1&wait=0", ``)
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("poll after the resume: %d %s", resp.StatusCode, body)
	}
}

// TestJoinWhileShuttingDown: a join that comes while the broker drains is
// answered 503 with a shutting-down error.
func TestJoinWhileShuttingDown(t *testing.T) {
	url, b := start(t, broker.Options{})
	b.Drain()
	resp, body := request(t, "POST", url+"/v1/sessions", `{"type":"join","room":"r","id":"j1","payload":{"peer":"a"}}`)
	if resp.StatusCode != 503 || !strings.Contains(body, `"code":"shutting-down"`) || !strings.Contains(body, `"ref":"j1"`) {
		t.Fatalf("join while draining: %d %s, want 503 and a shutting-down error", resp.StatusCode, body)
	}
}

// TestJoinRatePerAddress: joins past the per-address join rate are answered
// 429 rate-limited.
func TestJoinRatePerAddress(t *testing.T) {
	url, _ := start(t, broker.Options{JoinRate: 0.001, JoinBurst: 2})
	for i := range 3 {
		resp, body := request(t, "POST", url+"/v1/sessions", fmt.Sprintf(`{"type":"join","room":"r","id":"j%d","payload":{"peer":"p%d"}}`, i, i))
		if i < 2 && resp.StatusCode != 201 {
			t.Fatalf("join %d: %d %s", i, resp.StatusCode, body)
		}
		if i == 2 && (resp.StatusCode != 429 || !strings.Contains(body, `"code":"rate-limited"`) || !strings.Contains(body, `"ref":"j2"`)) {
			t.Fatalf("join past the join rate: %d %s, want 429 rate-limited", resp.StatusCode, body)
		}
	}
}
