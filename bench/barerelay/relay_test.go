package barerelay

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func startRelay(t *testing.T) (*Relay, string) {
	t.Helper()
	r := New()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		r.Close()
		srv.Close()
	})
	return r, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, base, id string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(base+"/?id="+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestRelayForwardsVerbatim(t *testing.T) {
	_, base := startRelay(t)
	a, b := dial(t, base, "a"), dial(t, base, "b")
	send(t, a, `not json`)
	send(t, a, `{"to":"nobody","x":1}`)
	send(t, a, `{"x":"no to"}`)
	frame := `{ "x" : [1, 2],  "to":"b", "payload":{"sdp":"v=0\r\n"} }`
	send(t, a, frame)
	expect(t, b, frame) // byte for byte, and the dropped frames did not arrive
	send(t, b, `{"to":"a","n":2}`)
	expect(t, a, `{"to":"a","n":2}`)
}

func TestRelayOrder(t *testing.T) {
	_, base := startRelay(t)
	a, b := dial(t, base, "a"), dial(t, base, "b")
	const n = 2000 // more than a queue: the sender is held back, nothing is lost
	go func() {
		for i := range n {
			a.WriteMessage(websocket.TextMessage, []byte(`{"to":"b","n":`+strconv.Itoa(i)+`}`))
		}
	}()
	for i := range n {
		expect(t, b, `{"to":"b","n":`+strconv.Itoa(i)+`}`)
	}
}

func TestRelayReplacesID(t *testing.T) {
	r, base := startRelay(t)
	a := dial(t, base, "a")
	old := dial(t, base, "b")
	fresh := dial(t, base, "b")
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := old.ReadMessage(); err == nil {
		t.Fatal("the replaced connection is still open")
	}
	send(t, a, `{"to":"b"}`)
	expect(t, fresh, `{"to":"b"}`)
	if n := r.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

func TestRelayNeedsID(t *testing.T) {
	_, base := startRelay(t)
	_, resp, err := websocket.DefaultDialer.Dial(base+"/", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial without id: %v, %v; want 400", err, resp)
	}
}

func TestRelayClose(t *testing.T) {
	r, base := startRelay(t)
	a := dial(t, base, "a")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := a.ReadMessage(); err == nil {
		t.Fatal("connection open after Close")
	}
	if _, resp, err := websocket.DefaultDialer.Dial(base+"/?id=b", nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v; want 503", err)
	}
	r.Close() // idempotent
}

func TestMainServes(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"-addr", "127.0.0.1:0"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	f := strings.Fields(line) // "barerelay: serving ws://127.0.0.1:port/?id=<peer>"
	base := strings.TrimSuffix(f[len(f)-1], "/?id=<peer>")
	a, b := dial(t, base, "a"), dial(t, base, "b")
	send(t, a, `{"to":"b"}`)
	expect(t, b, `{"to":"b"}`)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := b.ReadMessage(); err == nil {
		t.Fatal("connection open after Main returned")
	}
	if err := Main(t.Context(), []string{"-nope"}, io.Discard); err == nil {
		t.Fatal("Main accepted a bad flag")
	}
}
