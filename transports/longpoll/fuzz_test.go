package longpoll_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
)

// protocolCodes are the error codes of docs/protocol.md, section 2.
var protocolCodes = map[broker.Code]bool{
	broker.CodeBadRequest: true, broker.CodeTooLarge: true, broker.CodeUnsupportedVersion: true,
	broker.CodeUnknownType: true, broker.CodeUnauthorized: true, broker.CodeForbidden: true,
	broker.CodePeerIDTaken: true, broker.CodePeerUnavailable: true, broker.CodeRateLimited: true,
	broker.CodeRoomFull: true, broker.CodeSessionExpired: true, broker.CodeSlowConsumer: true,
	broker.CodeInternal: true,
}

// fuzzServer is a long-polling broker served in process, with one session
// that the fuzz inputs address: it is joined again whenever an input ends it.
type fuzzServer struct {
	b *broker.Broker
	h http.Handler

	mu      sync.Mutex
	n       int
	session string // the fuzzed session
	other   string // another peer's session in its room
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	b := broker.New(broker.Options{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxEnvelope:  2048,
		Rate:         -1,
		ResumeWindow: 50 * time.Millisecond,
		OfflineHold:  20 * time.Millisecond,
	})
	tr := longpoll.New(longpoll.Options{IdleTimeout: 500 * time.Millisecond})
	fs := &fuzzServer{b: b, h: httpserver.New(b, httpserver.Options{}, tr).Handler()}
	tb.Cleanup(func() { b.Close(broker.ReasonKicked) })
	return fs
}

// live returns the secret of the fuzzed session, joining a new one if it
// ended. Another peer is joined beside it, so that it has someone to hear.
func (fs *fuzzServer) live(tb testing.TB) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if s, ok := fs.b.Session(fs.session); ok && !s.Closed() {
		return fs.session
	}
	fs.n++
	fs.session = fs.join(tb, fmt.Sprintf("target-%d", fs.n))
	if s, ok := fs.b.Session(fs.other); !ok || s.Closed() {
		fs.other = fs.join(tb, fmt.Sprintf("other-%d", fs.n))
	}
	return fs.session
}

func (fs *fuzzServer) join(tb testing.TB, peer string) string {
	rec := fs.do(httptest.NewRequest("POST", "/v1/sessions", strings.NewReader(`{"type":"join","room":"fuzz","payload":{"peer":"`+peer+`"}}`)))
	var w struct{ Payload struct{ Session string } }
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &w) != nil {
		tb.Fatalf("joining %s: %d %s", peer, rec.Code, rec.Body)
	}
	return w.Payload.Session
}

func (fs *fuzzServer) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	fs.h.ServeHTTP(rec, r)
	return rec
}

var (
	routeCreate   = regexp.MustCompile(`^/v1/sessions/?$`)
	routeMessages = regexp.MustCompile(`^/v1/sessions/[^/]*/messages$`)
	routeSession  = regexp.MustCompile(`^/v1/sessions/[^/]+$`)
)

// route names the documented route that method and path address, or "".
func route(method, path string) string {
	switch {
	case method == "POST" && routeCreate.MatchString(path):
		return "create"
	case method == "POST" && routeMessages.MatchString(path):
		return "post"
	case method == "GET" && routeMessages.MatchString(path):
		return "poll"
	case method == "DELETE" && routeSession.MatchString(path):
		return "leave"
	}
	return ""
}

// statuses are the statuses each documented route may answer.
var statuses = map[string][]int{
	"create": {200, 201, 400, 401, 403, 404, 409, 413, 429},
	"post":   {202, 400, 404, 413},
	"poll":   {200, 400, 404},
	"leave":  {204, 404},
	"":       {200, 204, 404, 405},
}

var fuzzMethods = []string{"GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH"}

func FuzzLongPoll(f *testing.F) {
	// kind: 0 /v1/sessions+suffix, 1 the live session's messages+suffix,
	// 2 the live session+suffix, 3 /v1/sessions/+suffix, 4 /v1/sessions/+suffix+/messages.
	f.Add(uint8(0), uint8(1), "", "", []byte(`{"type":"join","room":"r","payload":{"peer":"p"}}`))
	f.Add(uint8(0), uint8(1), "/", "", []byte(`{"type":"join","room":"r","payload":{"meta":{"a":1}}}`))
	f.Add(uint8(0), uint8(1), "", "", []byte(`{"type":"join","room":"fuzz","payload":{"peer":"target"}}`))
	f.Add(uint8(0), uint8(1), "", "", []byte(`{"type":"join","room":"r","payload":{"resume":{"session":"x","last_seq":1}}}`))
	f.Add(uint8(0), uint8(1), "", "", []byte(`{"type":"offer","room":"r"}`))
	f.Add(uint8(0), uint8(1), "", "", []byte(`nope`))
	f.Add(uint8(0), uint8(1), "", "", []byte(``))
	f.Add(uint8(0), uint8(1), "", "", bytes.Repeat([]byte("x"), 3000))
	f.Add(uint8(0), uint8(0), "", "", []byte(nil))
	f.Add(uint8(0), uint8(4), "", "", []byte(nil))
	f.Add(uint8(1), uint8(1), "", "", []byte(`{"type":"ping","payload":1}`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`[{"type":"ping"},{"type":"nope","id":"z"},{"type":"message","payload":"hi"}]`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`[{"type":"message","to":"other","payload":{"x":[1,2]}},{"type":"candidate","to":"nobody","payload":null}]`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`[]`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`[1, "x", null, {}]`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`[{"type":"ping"}, oops]`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`null`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`{"type":"ack","payload":{"seq":1}}`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`{"type":"leave"}`))
	f.Add(uint8(1), uint8(1), "", "", []byte(`{"type":"join","room":"fuzz"}`))
	f.Add(uint8(1), uint8(1), "", "", bytes.Repeat([]byte(" "), 40000))
	f.Add(uint8(1), uint8(0), "", "after=0&wait=0", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "after=1&wait=1", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "after=99999&wait=0", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "after=-1", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "wait=56", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "wait=55&after=1", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "wait=18446744074", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "after=18446744073709551616", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "after=1&after=2&wait=", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "%zz", []byte(nil))
	f.Add(uint8(1), uint8(3), "", "", []byte(nil))
	f.Add(uint8(1), uint8(4), "", "", []byte(nil))
	f.Add(uint8(2), uint8(2), "", "", []byte(nil))
	f.Add(uint8(2), uint8(0), "", "", []byte(nil))
	f.Add(uint8(2), uint8(2), "/", "", []byte(nil))
	f.Add(uint8(3), uint8(2), "nosuch", "", []byte(nil))
	f.Add(uint8(3), uint8(2), "%2e%2e", "", []byte(nil))
	f.Add(uint8(4), uint8(0), "nosuch", "wait=0", []byte(nil))
	f.Add(uint8(4), uint8(1), "nosuch", "", []byte(`{"type":"ping"}`))
	f.Add(uint8(4), uint8(1), "a%2Fb", "", []byte(`{"type":"ping"}`))

	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, kind, method uint8, suffix, query string, body []byte) {
		id := fs.live(t)
		var path string
		switch kind % 5 {
		case 0:
			path = "/v1/sessions" + suffix
		case 1:
			path = "/v1/sessions/" + id + "/messages" + suffix
		case 2:
			path = "/v1/sessions/" + id + suffix
		case 3:
			path = "/v1/sessions/" + suffix
		case 4:
			path = "/v1/sessions/" + suffix + "/messages"
		}
		target := "http://broker.test" + path
		if query != "" {
			target += "?" + query
		}
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, m, target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		start := time.Now()
		rec := fs.do(req)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s %s took %v", m, target, d)
		}
		checkResponse(t, m, req.URL.EscapedPath(), body, rec)
	})
}

// checkResponse checks one answer of the long-polling transport against
// docs/protocol.md, section 3.
func checkResponse(t *testing.T, method, path string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	rt := route(method, path)
	status, out := rec.Code, rec.Body.Bytes()
	ok := false
	for _, s := range statuses[rt] {
		ok = ok || s == status
	}
	if !ok {
		t.Fatalf("%s %s (route %q) answered %d: %s", method, path, rt, status, out)
	}
	if rt == "" {
		return
	}
	if status >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: %d with Content-Type %q", method, path, status, ct)
		}
		var e struct {
			V       int    `json:"v"`
			Type    string `json:"type"`
			Seq     uint64 `json:"seq"`
			Payload struct {
				Code    broker.Code `json:"code"`
				Message string      `json:"message"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Type != broker.TypeError || e.V != 1 || e.Seq != 0 ||
			!protocolCodes[e.Payload.Code] || e.Payload.Message == "" {
			t.Fatalf("%s %s: %d with body %q, want an error envelope", method, path, status, out)
		}
		if e.Payload.Code.HTTPStatus() != status {
			t.Fatalf("%s %s: status %d for code %s", method, path, status, e.Payload.Code)
		}
		return
	}
	switch rt {
	case "create":
		var w struct {
			Type    string `json:"type"`
			Room    string `json:"room"`
			Payload struct {
				Peer    string `json:"peer"`
				Session string `json:"session"`
				Resumed bool   `json:"resumed"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(out, &w); err != nil || w.Type != broker.TypeWelcome || len(w.Payload.Session) < 32 ||
			!broker.ValidID(w.Payload.Peer) || !broker.ValidID(w.Room) || w.Payload.Resumed != (status == 200) {
			t.Fatalf("join answered %d %q", status, out)
		}
	case "post":
		var a struct {
			Accepted *int `json:"accepted"`
		}
		if err := json.Unmarshal(out, &a); err != nil || a.Accepted == nil || *a.Accepted < 0 {
			t.Fatalf("post answered %d %q", status, out)
		}
		if n := *a.Accepted; n > 1 && !bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			t.Fatalf("a single envelope counted as %d accepted", n)
		}
	case "poll":
		var arr []json.RawMessage
		if err := json.Unmarshal(out, &arr); err != nil {
			t.Fatalf("poll answered %d %q: not a JSON array", status, out)
		}
		var last uint64
		for _, item := range arr {
			var env struct {
				Type string `json:"type"`
				Seq  uint64 `json:"seq"`
			}
			if err := json.Unmarshal(item, &env); err != nil || env.Type == "" {
				t.Fatalf("poll item %q", item)
			}
			if env.Seq != 0 {
				if last != 0 && env.Seq != last+1 {
					t.Fatalf("poll gave seq %d after %d: %s", env.Seq, last, out)
				}
				last = env.Seq
			}
		}
	case "leave":
		if len(out) != 0 {
			t.Fatalf("leave answered %d with a body %q", status, out)
		}
	}
}

// TestPollRefusesHugeWait checks that a wait far past the 55 s maximum is
// refused like any other wait past it, and not wrapped around.
func TestPollRefusesHugeWait(t *testing.T) {
	fs := newFuzzServer(t)
	id := fs.live(t)
	for _, wait := range []string{"56", "3600", "9223372037", "18446744074", "18446744073709551615"} {
		req := httptest.NewRequest("GET", "/v1/sessions/"+id+"/messages?after=1&wait="+wait, nil)
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		rec := fs.do(req.WithContext(ctx))
		cancel()
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"code":"bad-request"`) {
			t.Errorf("wait=%s: %d %s, want 400 bad-request", wait, rec.Code, rec.Body)
		}
	}
}
