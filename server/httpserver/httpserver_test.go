package httpserver_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
)

func serve(t *testing.T, opts httpserver.Options) string {
	t.Helper()
	b := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httpserver.New(b, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	return ln.Addr().String()
}

// TestSlowlorisDropped: a client that trickles its headers is cut off.
func TestSlowlorisDropped(t *testing.T) {
	addr := serve(t, httpserver.Options{ReadHeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := c.Write([]byte("X-Slow: 1\r\n")); err != nil {
			break
		}
		buf := make([]byte, 512)
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		if n > 0 || (err != nil && !isTimeout(err)) {
			break // answered (408) or closed
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a slowloris client was never cut off")
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestFilesAndOperations(t *testing.T) {
	files := fstest.MapFS{
		"switchboard.js":  {Data: []byte("export const x = 1;")},
		"demo/index.html": {Data: []byte("<!doctype html><title>demo</title>")},
	}
	addr := serve(t, httpserver.Options{Files: files})
	for path, want := range map[string]string{
		"/client/switchboard.js": "export const x",
		"/":                      "<title>demo</title>",
		"/healthz":               "ok",
		"/readyz":                "ready",
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(bufio.NewReader(resp.Body))
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	if resp, err := http.Get("http://" + addr + "/debug/pprof/"); err != nil || resp.StatusCode == 200 {
		t.Errorf("pprof served without being asked for")
	}
}

// echoTransport is an HTTP transport that knows nothing of chi: it mounts
// through broker.Mux and reads its wildcard with PathValue.
type echoTransport struct{ b *broker.Broker }

func (*echoTransport) Name() string { return "echo-test" }

func (*echoTransport) Run(ctx context.Context, _ *broker.Broker) error { <-ctx.Done(); return nil }

func (e *echoTransport) Mount(mux broker.Mux, b *broker.Broker) {
	e.b = b
	mux.Handle("GET /v1/echo/{word}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "echo "+r.PathValue("word"))
	}))
}

var _ broker.HTTPTransport = (*echoTransport)(nil)

// TestCustomHTTPTransport: a transport mounted through broker.Mux is served,
// and GET /v1/transports lists every transport of the node.
func TestCustomHTTPTransport(t *testing.T) {
	b := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	echo := &echoTransport{}
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, echo, plainTransport{}).Handler())
	defer srv.Close()
	if echo.b != b {
		t.Fatal("Mount did not get the broker")
	}
	for path, want := range map[string]string{
		"/v1/echo/hello": "echo hello",
		"/v1/transports": `{"transports":["echo-test","plain-test"]}`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
}

// plainTransport is a transport with no HTTP routes.
type plainTransport struct{}

func (plainTransport) Name() string                                    { return "plain-test" }
func (plainTransport) Run(ctx context.Context, _ *broker.Broker) error { <-ctx.Done(); return nil }

// stallTransport is an HTTP transport whose routes read a request's body,
// or wait on its context, telling the test when they have started.
type stallTransport struct{ reading, waiting chan struct{} }

func (stallTransport) Name() string                                    { return "stall" }
func (stallTransport) Run(ctx context.Context, _ *broker.Broker) error { <-ctx.Done(); return nil }
func (st stallTransport) Mount(mux broker.Mux, _ *broker.Broker) {
	mux.Handle("POST /stall", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(st.reading)
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	mux.Handle("GET /wait", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(st.waiting)
		<-r.Context().Done()
		_, _ = w.Write([]byte("[]"))
	}))
}

// TestShutdownCutsStalledRequests: a client that stops sending its body,
// and a request waiting on its context, do not hold shutdown up: it ends
// cleanly, well within its time.
func TestShutdownCutsStalledRequests(t *testing.T) {
	b := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st := stallTransport{reading: make(chan struct{}), waiting: make(chan struct{})}
	srv := httpserver.New(b, httpserver.Options{}, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"type\":"); err != nil {
		t.Fatal(err)
	}
	<-st.reading
	waited := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/wait")
		if err != nil {
			waited <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		waited <- string(body)
	}()
	<-st.waiting
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v (a stalled request held it for its whole time)", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if got := <-waited; got != "[]" {
		t.Fatalf("waiting request: %q", got)
	}
}

// TestClientFilesCrossOrigin: /client/* answers GET and HEAD with CORS
// headers for the allowed origins, refuses others with 403, and serves the
// type declarations as TypeScript.
func TestClientFilesCrossOrigin(t *testing.T) {
	files := fstest.MapFS{
		"switchboard.js":   {Data: []byte("export const x = 1;")},
		"switchboard.d.ts": {Data: []byte("export const x: 1;")},
	}
	addr := serve(t, httpserver.Options{Files: files, AllowedOrigins: []string{"http://app.example"}})
	do := func(method, path, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		resp := do(m, "/client/switchboard.js", "http://app.example")
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" ||
			!strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Errorf("%s from an allowed origin: %d %v", m, resp.StatusCode, resp.Header)
		}
	}
	if resp := do(http.MethodGet, "/client/switchboard.js", "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET from another origin: %d", resp.StatusCode)
	}
	if resp := do(http.MethodGet, "/client/switchboard.js", ""); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET without an Origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do(http.MethodGet, "/client/switchboard.d.ts", ""); !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/typescript") {
		t.Errorf(".d.ts served as %q", resp.Header.Get("Content-Type"))
	}
	if resp := do(http.MethodOptions, "/client/switchboard.js", "http://app.example"); resp.StatusCode != http.StatusNoContent {
		t.Errorf("preflight: %d", resp.StatusCode)
	}
}
