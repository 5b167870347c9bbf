package switchboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
)

// fakeBroker is a scripted WebSocket broker: each connection runs the next
// script, for testing what a real broker never does (repeats, gaps) and what
// is hard to time with one.
type fakeBroker struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	scripts []func(*fakeConn)
	n       int
}

type fakeConn struct {
	t    *testing.T
	ws   *websocket.Conn
	join switchboard.Envelope
	// resume is the join's resume, if any.
	resume *struct {
		Session string `json:"session"`
		LastSeq uint64 `json:"last_seq"`
	}
}

func newFakeBroker(t *testing.T, scripts ...func(*fakeConn)) *fakeBroker {
	f := &fakeBroker{t: t, scripts: scripts}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ws" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		if f.n >= len(f.scripts) {
			f.mu.Unlock()
			http.Error(w, "no more scripts", http.StatusServiceUnavailable)
			return
		}
		script := f.scripts[f.n]
		f.n++
		f.mu.Unlock()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c := &fakeConn{t: t, ws: ws}
		c.join = c.read()
		var p struct {
			Resume *struct {
				Session string `json:"session"`
				LastSeq uint64 `json:"last_seq"`
			} `json:"resume"`
		}
		_ = c.join.Decode(&p)
		c.resume = p.Resume
		script(c)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (c *fakeConn) read() switchboard.Envelope {
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return switchboard.Envelope{}
	}
	var env switchboard.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		c.t.Errorf("fake broker: %v", err)
	}
	return env
}

func (c *fakeConn) send(env switchboard.Envelope) {
	env.V = 1
	data, _ := json.Marshal(env)
	_ = c.ws.WriteMessage(websocket.TextMessage, data)
}

func (c *fakeConn) welcome(seq uint64, resumed bool) {
	c.send(switchboard.Envelope{Type: "welcome", Room: "r", Seq: seq,
		Payload: json.RawMessage(`{"peer":"me","session":"s3cret","peers":[],"resumed":` + map[bool]string{true: "true", false: "false"}[resumed] + `}`)})
}

func (c *fakeConn) message(seq uint64, n int) {
	c.send(switchboard.Envelope{Type: "message", Room: "r", From: "other", Seq: seq, Payload: json.RawMessage(jsonInt(n))})
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// drain reads until the client closes, answering pings, and returns what it
// read.
func (c *fakeConn) drain() []switchboard.Envelope {
	var got []switchboard.Envelope
	for {
		env := c.read()
		if env.Type == "" {
			return got
		}
		if env.Type == "ping" {
			c.send(switchboard.Envelope{Type: "pong", Payload: env.Payload})
		}
		got = append(got, env)
	}
}

// The client drops a repeated seq, and on a gap resumes from the last seq it
// has, so that the application sees every message once, in order.
func TestFakeRepeatsAndGaps(t *testing.T) {
	resumed := make(chan uint64, 1)
	f := newFakeBroker(t,
		func(c *fakeConn) {
			c.welcome(1, false)
			c.message(2, 0)
			c.message(3, 1)
			c.message(3, 1) // repeated
			c.message(2, 0) // repeated
			c.message(5, 3) // gap: 4 is missing
			c.drain()
		},
		func(c *fakeConn) {
			if c.join.Type != "join" || c.resume == nil || c.resume.Session != "s3cret" {
				t.Errorf("second join %+v", c.join)
				return
			}
			resumed <- c.resume.LastSeq
			c.welcome(0, true)
			c.message(4, 2)
			c.message(5, 3)
			c.message(6, 4)
			c.drain()
		},
	)
	cl := dial(t, f.srv.URL, switchboard.Options{Room: "r"})
	checkSequence(t, collect(t, cl, 5, 10*time.Second), 5)
	if got := <-resumed; got != 3 {
		t.Fatalf("resumed after %d, want 3", got)
	}
}

// Envelopes written on a connection that broke before the broker confirmed
// them are sent again, with the same ids, after the resume.
func TestFakeResendUnconfirmed(t *testing.T) {
	first := make(chan []switchboard.Envelope, 1)
	second := make(chan []switchboard.Envelope, 1)
	f := newFakeBroker(t,
		func(c *fakeConn) {
			c.welcome(1, false)
			// Read two messages and a ping without answering it, then
			// break. The ping may come between the messages, when the
			// writer took the first before the second was queued.
			var got []switchboard.Envelope
			for messages, pings := 0, 0; messages < 2 || pings < 1; {
				env := c.read()
				switch env.Type {
				case "message":
					got = append(got, env)
					messages++
				case "ping":
					pings++
				}
			}
			first <- got
		},
		func(c *fakeConn) {
			c.welcome(0, true)
			second <- c.drain()
		},
	)
	cl := dial(t, f.srv.URL, switchboard.Options{Room: "r"})
	ctx := context.Background()
	cl.SendMessage(ctx, "x", 1)
	cl.SendMessage(ctx, "x", 2)
	got1 := <-first
	if got1[0].ID == "" || got1[0].ID == got1[1].ID {
		t.Fatalf("first connection got %+v", got1)
	}
	cl.SendMessage(ctx, "x", 3)
	time.Sleep(200 * time.Millisecond)
	cl.Close()
	got2 := <-second
	var ids []string
	for _, env := range got2 {
		if env.Type == "message" {
			ids = append(ids, env.ID)
		}
	}
	if len(ids) != 3 || ids[0] != got1[0].ID || ids[1] != got1[1].ID {
		t.Fatalf("after resume got %+v", got2)
	}
	if last := got2[len(got2)-1]; last.Type != "leave" {
		t.Fatalf("last envelope %+v, want leave", last)
	}
}

// Once the broker confirms what was written (the pong of the ping that
// followed it), nothing is sent again after a break.
func TestFakeConfirmedNotResent(t *testing.T) {
	second := make(chan []switchboard.Envelope, 1)
	confirmed := make(chan struct{})
	f := newFakeBroker(t,
		func(c *fakeConn) {
			c.welcome(1, false)
			for {
				env := c.read()
				if env.Type == "ping" {
					c.send(switchboard.Envelope{Type: "pong", Payload: env.Payload})
					time.Sleep(100 * time.Millisecond)
					close(confirmed)
					return
				}
			}
		},
		func(c *fakeConn) {
			c.welcome(0, true)
			second <- c.drain()
		},
	)
	cl := dial(t, f.srv.URL, switchboard.Options{Room: "r"})
	cl.SendMessage(context.Background(), "x", 1)
	<-confirmed
	time.Sleep(200 * time.Millisecond)
	cl.Close()
	for _, env := range <-second {
		if env.Type == "message" {
			t.Fatalf("confirmed message sent again: %+v", env)
		}
	}
}

// The client acknowledges at least every 32 messages, and within a second.
func TestFakeAcks(t *testing.T) {
	acks := make(chan uint64, 100)
	f := newFakeBroker(t, func(c *fakeConn) {
		c.welcome(1, false)
		go func() {
			for {
				env := c.read()
				if env.Type == "" {
					return
				}
				if env.Type == "ack" {
					var p struct{ Seq uint64 }
					env.Decode(&p)
					acks <- p.Seq
				}
			}
		}()
		for i := range 40 {
			c.message(uint64(i+2), i)
		}
		time.Sleep(3 * time.Second)
	})
	cl := dial(t, f.srv.URL, switchboard.Options{Room: "r"})
	start := time.Now()
	checkSequence(t, collect(t, cl, 40, 5*time.Second), 40)
	var last uint64
	for last < 41 {
		select {
		case seq := <-acks:
			if seq < last {
				t.Fatalf("ack %d after %d", seq, last)
			}
			last = seq
		case <-time.After(2 * time.Second):
			t.Fatalf("no ack of 41 after %v (last %d)", time.Since(start), last)
		}
	}
}

// A pong for the application's own ping is delivered to it.
func TestFakeApplicationPing(t *testing.T) {
	f := newFakeBroker(t, func(c *fakeConn) {
		c.welcome(1, false)
		c.drain()
	})
	cl := dial(t, f.srv.URL, switchboard.Options{Room: "r"})
	cl.Send(context.Background(), switchboard.Envelope{Type: "ping", Payload: json.RawMessage(`{"t":1}`)})
	env := recv(t, cl)
	if env.Type != "pong" || string(env.Payload) != `{"t":1}` {
		t.Fatalf("got %+v", env)
	}
}
