package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/server/internal/config"
)

var commands = []string{"serve", "token", "peer", "bench", "health", "version"}

// runStatus runs args as the binary would and returns its exit status and
// output.
func runStatus(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestHelp: every subcommand's -h prints a one-line description and its
// flags to standard output and exits 0; the top-level usage lists every
// subcommand.
func TestHelp(t *testing.T) {
	code, out, _ := runStatus(t, "-h")
	if code != 0 {
		t.Errorf("switchboard -h: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "switchboard "+c) {
			t.Errorf("switchboard -h does not list %s:\n%s", c, out)
		}
	}
	if code, _, errOut := runStatus(t); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Errorf("no command: exit %d, stderr %q", code, errOut)
	}
	for _, c := range commands {
		for _, h := range []string{"-h", "--help"} {
			code, out, errOut := runStatus(t, c, h)
			lines := strings.Split(out, "\n")
			if code != 0 || errOut != "" || len(lines) < 4 || !strings.HasPrefix(lines[0], "Usage: switchboard "+c) ||
				lines[2] == "" || !strings.Contains(out, "Flags:") {
				t.Errorf("%s %s: exit %d, stderr %q, stdout:\n%s", c, h, code, errOut, out)
			}
			if c != "version" && !strings.Contains(out, "\n  -") {
				t.Errorf("%s %s lists no flags:\n%s", c, h, out)
			}
		}
	}
}

// TestFlagErrors: a bad flag, a missing flag value or a stray argument is
// one line on standard error, naming the problem and how to see the flags,
// with no usage dump, and exit status 2.
func TestFlagErrors(t *testing.T) {
	for _, c := range commands {
		for _, args := range [][]string{{c, "-no-such-flag"}, {c, "stray"}} {
			code, out, errOut := runStatus(t, args...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 ||
				!strings.Contains(errOut, "run 'switchboard "+c+" -h' for its flags") || strings.Contains(errOut, "Usage") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
	}
	code, _, errOut := runStatus(t, "peer", "-room")
	if code != 2 || !strings.Contains(errOut, "flag needs an argument: -room") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("peer -room: exit %d, %q", code, errOut)
	}
	code, _, errOut = runStatus(t, "nosuch")
	if code != 2 || !strings.Contains(errOut, `unknown command "nosuch"`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

// TestWelcome: what serve prints on start names the demo page, the
// endpoints of the transports that run, and how to turn tokens on.
func TestWelcome(t *testing.T) {
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv6zero, Port: 8080}
	w := welcome(cfg, addr)
	for _, want := range []string{"http://localhost:8080/", "open it in two tabs", "ws://localhost:8080/v1/ws",
		"http://localhost:8080/v1/sessions", "transports: longpoll, websocket", "SWITCHBOARD_TOKEN_SECRET", "switchboard token"} {
		if !strings.Contains(w, want) {
			t.Errorf("welcome lacks %q:\n%s", want, w)
		}
	}
	cfg.Enabled = []string{"websocket"}
	cfg.TokenSecret = goodSecret
	w = welcome(cfg, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000})
	if strings.Contains(w, "Long-poll") || !strings.Contains(w, "ws://127.0.0.1:9000/v1/ws") || !strings.Contains(w, "Tokens:     required") {
		t.Errorf("websocket only, with tokens:\n%s", w)
	}
}

// TestServePrintsWelcome: serve itself prints the welcome once it listens.
func TestServePrintsWelcome(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"serve", "-listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "open it in two tabs") {
		if time.Now().After(deadline) {
			t.Fatalf("no welcome in 30s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, stderr.String())
	}
}

// TestHealth: health exits 0 when /readyz answers 200 and 1 otherwise,
// saying why.
func TestHealth(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			http.Error(w, "redis: unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	if code, out, errOut := runStatus(t, "health", "-url", srv.URL); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("ready: exit %d, %q %q", code, out, errOut)
	}
	ready = false
	if code, _, errOut := runStatus(t, "health", "-url", srv.URL+"/"); code != 1 || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "redis: unreachable") {
		t.Errorf("unready: exit %d, %q", code, errOut)
	}
	srv.Close()
	if code, _, errOut := runStatus(t, "health", "-url", srv.URL, "-timeout", "5s"); code != 1 || errOut == "" {
		t.Errorf("down: exit %d, %q", code, errOut)
	}
	if got := defaultHealthURL(":9090"); got != "http://127.0.0.1:9090" {
		t.Errorf("defaultHealthURL(:9090) = %s", got)
	}
	if got := defaultHealthURL(""); got != "http://127.0.0.1:8080" {
		t.Errorf("defaultHealthURL() = %s", got)
	}
}

// TestBenchRateLimited: bench against a broker whose rate limit the run
// exceeds says so, names SWITCHBOARD_LIMITS_RATE=-1, and exits 1.
func TestBenchRateLimited(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("SWITCHBOARD_LIMITS_RATE", "20")
	t.Setenv("SWITCHBOARD_LIMITS_BURST", "20")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveErr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"serve", "-listen", addr}, &bytes.Buffer{}, &serveErr) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for Run(ctx, []string{"health", "-url", "http://" + addr}, &bytes.Buffer{}, &bytes.Buffer{}) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("broker not ready in 30s:\n%s", serveErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, errOut := runStatus(t, "bench", "-url", "http://"+addr, "-pairs", "2", "-duration", "1s", "-warmup", "200ms")
	if code != 1 || !strings.Contains(out, `"server: rate-limited"`) || !strings.Contains(errOut, "SWITCHBOARD_LIMITS_RATE=-1") {
		t.Fatalf("bench against a rate of 20/s: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
