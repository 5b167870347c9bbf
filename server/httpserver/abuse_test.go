package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	wstransport "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// Bounds of what one client's abuse may make the broker hold, as
// docs/benchmarks.md states them: each session it made may cost its mailbox
// bound and its held-message bound (each 1 MiB by default) and
// perSessionExtra besides; the whole may cost abuseConstant more.
const (
	perSessionExtra = 256 << 10
	abuseConstant   = 4 << 20
)

// TestOneClientsAbuseIsBounded runs, over WebSocket and long-polling served
// in this process, each abuse of docs/benchmarks.md's "What one client can
// make the broker hold", and checks that the heap grows by no more than the
// sessions the client made times the per-session bound, plus a constant.
func TestOneClientsAbuseIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends some 60 MB through the broker")
	}
	b := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lp, ws := longpoll.New(longpoll.Options{}), wstransport.New(wstransport.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, lp, ws).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = lp.Run(ctx, b); done <- struct{}{} }()
	go func() { _ = ws.Run(ctx, b); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		srv.Close()
		b.Close(broker.ReasonKicked)
	})
	o := b.Options()
	perSession := uint64(2*o.MailboxBytes + perSessionExtra)

	join := func(room, peer, meta string) string {
		t.Helper()
		p := map[string]any{"peer": peer}
		if meta != "" {
			p["meta"] = json.RawMessage(meta)
		}
		env, _ := json.Marshal(map[string]any{"type": "join", "room": room, "payload": p})
		resp, body := post(t, srv.URL+"/v1/sessions", string(env))
		if resp.StatusCode != 201 {
			return ""
		}
		var w struct{ Payload struct{ Session string } }
		_ = json.Unmarshal([]byte(body), &w)
		return w.Payload.Session
	}
	batch := func(envelope string) string {
		return "[" + strings.Repeat(envelope+",", 15) + envelope + "]"
	}
	abuses := []struct {
		name string
		run  func(t *testing.T) (sessions int)
	}{
		{"long-poll pings with 60 KB payloads, never polled", func(t *testing.T) int {
			s := join("pings", "p", "")
			body := batch(`{"type":"ping","payload":"` + strings.Repeat("x", 60000) + `"}`)
			for range 40 {
				if resp, _ := post(t, srv.URL+"/v1/sessions/"+s+"/messages", body); resp.StatusCode != 202 {
					break // ended as a slow consumer
				}
			}
			return 1
		}},
		{"long-poll pings, never polled", func(t *testing.T) int {
			s := join("pings", "q", "")
			body := batch(`{"type":"ping","payload":"` + strings.Repeat("x", broker.MaxPingPayload-2) + `"}`)
			for range 200 {
				if resp, _ := post(t, srv.URL+"/v1/sessions/"+s+"/messages", body); resp.StatusCode != 202 {
					break
				}
			}
			return 1
		}},
		{"WebSocket pings, never read", func(t *testing.T) int {
			c, _, err := websocket.DefaultDialer.Dial(transporttest.WSURL(srv.URL), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"pings","payload":{"peer":"w"}}`))
			ping := []byte(`{"type":"ping","payload":"` + strings.Repeat("x", 60000) + `"}`)
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			for range 1000 {
				if c.WriteMessage(websocket.TextMessage, ping) != nil {
					break
				}
			}
			return 1
		}},
		{"messages of 60 KB to 50 peers that never join", func(t *testing.T) int {
			s := join("held", "h", "")
			for i := range 20 {
				body := batch(fmt.Sprintf(`{"type":"message","to":"ghost-%d","payload":"%s"}`, i%50, strings.Repeat("x", 60000)))
				if resp, _ := post(t, srv.URL+"/v1/sessions/"+s+"/messages", body); resp.StatusCode != 202 {
					break
				}
			}
			return 1
		}},
		{"joins with 1 KiB meta into rooms of 150, never polled", func(t *testing.T) int {
			meta := `{"m":"` + strings.Repeat("x", broker.MaxMetaLength-8) + `"}`
			n, start := 0, time.Now()
			for i := range 300 {
				if join(fmt.Sprint("crowd-", i/150), fmt.Sprint("c", i), meta) != "" {
					n++
				}
			}
			if most := float64(o.JoinBurst) + o.JoinRate*time.Since(start).Seconds() + 1; float64(n) > most {
				t.Fatalf("%d joins from one address were admitted in %v, past the join rate", n, time.Since(start))
			}
			return n
		}},
	}
	for _, a := range abuses {
		t.Run(a.name, func(t *testing.T) {
			before := heapInUse()
			sessions := a.run(t)
			time.Sleep(200 * time.Millisecond) // what is in flight lands
			grown := int64(heapInUse()) - int64(before)
			bound := uint64(sessions)*perSession + abuseConstant
			t.Logf("%d session(s): the heap grew %.1f MiB (bound %.1f MiB)", sessions, float64(grown)/(1<<20), float64(bound)/(1<<20))
			if grown > int64(bound) {
				t.Fatalf("%d session(s) grew the heap by %d bytes, over the bound of %d", sessions, grown, bound)
			}
		})
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}
