package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/examples/sse"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
)

// sseConn is brokertest's view of one SSE session: the stream of a POST
// /v1/sse down, POSTs up.
type sseConn struct {
	base   string
	join   sync.Once
	ready  chan struct{}
	events chan []byte
	body   io.Closer
	unread bool // stop reading the stream after the welcome, as a peer that hangs

	mu      sync.Mutex
	session string
}

func (c *sseConn) Send(ctx context.Context, data []byte) error {
	first := false
	c.join.Do(func() { first = true })
	if first {
		req, _ := http.NewRequest("POST", c.base+"/v1/sse", bytes.NewReader(data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.events <- body
			close(c.events)
			return nil
		}
		c.body = resp.Body
		go c.read(resp.Body)
		return nil
	}
	<-c.ready
	c.mu.Lock()
	session := c.session
	c.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/sse/"+session+"/messages", bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

func (c *sseConn) read(body io.Reader) {
	defer close(c.events)
	r := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("data: "))
		if !ok {
			continue
		}
		c.mu.Lock()
		if c.session == "" {
			if i := bytes.Index(data, []byte(`"session":"`)); i >= 0 {
				rest := data[i+len(`"session":"`):]
				c.session = string(rest[:bytes.IndexByte(rest, '"')])
				close(c.ready)
			}
		}
		c.mu.Unlock()
		c.events <- append([]byte(nil), data...)
		if c.unread {
			select {} // never read again: the broker's writes back up
		}
	}
}

func (c *sseConn) Recv(ctx context.Context) ([]byte, error) {
	select {
	case data, ok := <-c.events:
		if !ok {
			return nil, io.EOF
		}
		return data, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *sseConn) Drop() error {
	if c.body != nil {
		return c.body.Close()
	}
	return nil
}

// lastBase is the base URL of the server that start made last, for the
// Unread dialer of the same subtest (they run one at a time).
var lastBase string

func start(t *testing.T, opts broker.Options) brokertest.Dialer {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	b := broker.New(opts)
	tr := sse.New(sse.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.CloseClientConnections()
		srv.Close()
		b.Close(broker.ReasonTimeout)
	})
	lastBase = srv.URL
	return func(context.Context) (brokertest.Conn, error) {
		return &sseConn{base: srv.URL, ready: make(chan struct{}), events: make(chan []byte, 4096)}, nil
	}
}

// unread dials a connection that reads its welcome and then nothing.
func unread(context.Context) (brokertest.Conn, error) {
	return &sseConn{base: lastBase, ready: make(chan struct{}), events: make(chan []byte, 16), unread: true}, nil
}

// TestConformance runs the broker's conformance kit against the transport.
func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{Start: start, Unread: unread})
}

// TestBrowserClient runs the browser client's tests of sse.js (in Node)
// against the custom binary, server.Run with the sse transport beside the
// built-in ones.
func TestBrowserClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is needed")
		}
		t.Skip("no node")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("SWITCHBOARD_LISTEN", addr)
	t.Setenv("SWITCHBOARD_TRANSPORTS", "websocket,longpoll,sse")
	t.Setenv("SWITCHBOARD_LOG_LEVEL", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- server.Run(ctx, []string{"serve"}, t.Output(), t.Output()) }()
	defer func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("serve exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command(node, "--test", "test/")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_URL="+base)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "# pass 2") {
		var ee *exec.ExitError
		t.Fatalf("node --test: %v %v\n%s", err, errors.As(err, &ee), out)
	}
}
