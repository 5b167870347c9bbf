package redis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// serveWS serves b over WebSocket for the test and returns its ws:// URL.
func serveWS(t *testing.T, b *broker.Broker) string {
	t.Helper()
	tr := websocket.New(websocket.Options{})
	srv := httptest.NewServer(httpserver.New(b, httpserver.Options{}, tr).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return transporttest.WSURL(srv.URL)
}

// TestStoreConformance runs the conformance kit over WebSocket on a broker
// whose mailboxes are in Redis.
func TestStoreConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			client := srv.Client(t)
			opts.Store = redis.NewStore(client, fmt.Sprintf("conf%d", time.Now().UnixNano()))
			opts.Logger = discardLogger()
			b := broker.New(opts)
			t.Cleanup(func() { b.Close(broker.ReasonKicked) })
			return transporttest.WebSocket(serveWS(t, b))
		},
	})
}

// TestNodeDiesPeerResumesElsewhere: two nodes on one Redis (backplane and
// store); the node serving bob dies with no goodbye while alice keeps
// sending; bob resumes on the other node and gets exactly what it missed.
func TestNodeDiesPeerResumesElsewhere(t *testing.T) {
	srv := redistest.Start(t)
	node := func(id string) (*broker.Broker, string) {
		client := srv.Client(t)
		bp, err := redis.NewBackplane(redis.BackplaneOptions{Client: client, Prefix: "die"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bp.Close() })
		b := broker.New(broker.Options{NodeID: id, Backplane: bp, Store: redis.NewStore(client, "die"), Logger: discardLogger(), Rate: -1})
		t.Cleanup(func() { b.Close(broker.ReasonKicked) })
		return b, serveWS(t, b)
	}
	n1, url1 := node("n1")
	_, url2 := node("n2")
	bob, _ := brokertest.Join(t, transporttest.WebSocket(url1), "r", "bob")
	alice, _ := brokertest.Join(t, transporttest.WebSocket(url2), "r", "alice")
	bob.Expect(broker.TypePeerJoined)
	for i := 0; i < 20; i++ {
		alice.Send(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	for i := 0; i < 10; i++ {
		bob.Expect("candidate")
	}
	// n1 dies: its connections drop, it tells nobody.
	_ = bob.Conn.Drop()
	n1.Close(broker.ReasonKicked)
	for i := 20; i < 40; i++ {
		alice.Send(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	again, w := brokertest.Join(t, transporttest.WebSocket(url2), "r", "bob", "resume",
		fmt.Sprintf(`{"session":%q,"last_seq":%d}`, bob.Session, bob.Last))
	if !w.Resumed {
		t.Fatalf("not resumed: %+v", w)
	}
	again.Last = bob.Last
	for i := 10; i < 40; i++ {
		env := again.Expect("candidate")
		if want := fmt.Sprintf(`"c%d"`, i); !strings.Contains(string(env.Payload), want) {
			t.Fatalf("after resume got %s, want %s", env.Payload, want)
		}
	}
	alice.Send(`{"type":"message","to":"bob","payload":"last"}`)
	if env := again.Next(); string(env.Payload) != `"last"` {
		t.Fatalf("after the missed ones: %s", env.Raw)
	}
	alice.Send(`{"type":"ping"}`)
	if env := alice.Next(); env.Type != broker.TypePong {
		t.Fatalf("alice saw %s", env.Raw)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestStoreBoundsHold: with mailboxes in Redis, what a session queues and
// never takes is bounded all the same: pongs end it as a slow consumer,
// and what it may have held for absent peers is bounded as its mailbox is.
func TestStoreBoundsHold(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	b := broker.New(broker.Options{Store: redis.NewStore(client, "bounds"), Logger: discardLogger(),
		Rate: -1, MailboxMessages: 16})
	t.Cleanup(func() { b.Close(broker.ReasonKicked) })
	ctx := context.Background()
	join := func(peer string) *broker.Session {
		j, err := b.Join(ctx, broker.JoinRequest{Room: "r", Peer: peer, Transport: "test"})
		if err != nil {
			t.Fatal(err)
		}
		j.Session.Attach() // a connection that never writes
		return j.Session
	}
	pinger := join("pinger")
	for i := 0; i < 100 && !pinger.Closed(); i++ {
		_ = pinger.HandleRaw(ctx, []byte(`{"type":"ping","payload":"p"}`))
	}
	deadline := time.Now().Add(10 * time.Second)
	for !pinger.Closed() {
		if time.Now().After(deadline) {
			t.Fatal("a session that pings and never reads was not ended")
		}
		time.Sleep(5 * time.Millisecond)
	}

	sender := join("sender")
	for i := range 16 {
		if err := sender.HandleRaw(ctx, []byte(fmt.Sprintf(`{"type":"message","to":"ghost-%d"}`, i))); err != nil {
			t.Fatalf("held message %d: %v", i, err)
		}
	}
	err := sender.HandleRaw(ctx, []byte(`{"type":"message","to":"ghost-16","id":"m16"}`))
	if pe := (*broker.Error)(nil); !errors.As(err, &pe) || pe.Code != broker.CodePeerUnavailable || pe.Ref != "m16" {
		t.Fatalf("a 17th held message: %v, want peer-unavailable", err)
	}
}
