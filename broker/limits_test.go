package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/broker"
)

// logBuffer is a concurrency-safe buffer for a test's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) lines() int { return strings.Count(l.String(), "\n") }

func bufferLogger(level slog.Level) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: level})), lb
}

// TestJoinWhileShuttingDown: a join that comes while the broker drains is
// refused with shutting-down (HTTP 503), whose cause is ErrShutdown.
func TestJoinWhileShuttingDown(t *testing.T) {
	b := newBroker(t, broker.Options{})
	b.Drain()
	_, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "alice"})
	if codeOf(err) != broker.CodeShuttingDown || !errors.Is(err, broker.ErrShutdown) {
		t.Fatalf("join while draining: %v, want shutting-down wrapping ErrShutdown", err)
	}
	if s := broker.AsError(err).Code.HTTPStatus(); s != 503 {
		t.Fatalf("shutting-down maps to HTTP %d, want 503", s)
	}
}

// TestLogsShowNoSecret: what the broker logs of a session, from its join to
// its end, names it by its ID, never by any part of its secret.
func TestLogsShowNoSecret(t *testing.T) {
	log, lb := bufferLogger(slog.LevelDebug)
	b := newBroker(t, broker.Options{Logger: log, LogEnvelopes: true})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	_ = alice.send(`{"type":"message","to":"nobody-here!","id":"m1"}`)
	alice.mustSend(`{"type":"message","to":"bob","id":"m2"}`)
	alice.s.Logger().Info("a transport's line")
	bob.s.Close(broker.ReasonLeave)
	alice.s.Close(broker.ReasonLeave)

	for _, s := range []*broker.Session{alice.s, bob.s} {
		if len(s.ID()) < 8 || strings.Contains(s.Secret(), s.ID()) || s.ID() != broker.LogID(s.Secret()) {
			t.Fatalf("session ID %q of secret %q", s.ID(), s.Secret())
		}
		logs := lb.String()
		if strings.Contains(logs, s.Secret()[:6]) {
			t.Fatalf("the logs show the start of a session secret %s:\n%s", s.Secret()[:6], logs)
		}
		if !strings.Contains(logs, "id="+s.ID()) {
			t.Fatalf("the logs do not name session %s:\n%s", s.ID(), logs)
		}
	}
}

// TestRefusalsLogSparingly: refused envelopes are counted, and logged at
// info level at most a line per interval, whatever a client sends.
func TestRefusalsLogSparingly(t *testing.T) {
	log, lb := bufferLogger(slog.LevelInfo)
	b := newBroker(t, broker.Options{Logger: log, Rate: -1})
	alice := join(t, b, "demo", "alice")
	before := lb.lines()
	for range 1000 {
		_ = alice.send(`{"type":"shout"}`)
		_ = alice.send(`not json`)
	}
	if n := lb.lines() - before; n > 2 {
		t.Fatalf("2,000 refused envelopes logged %d lines:\n%s", n, lb.String())
	}
}

// TestPingPayloadBounded: a pong echoes at most MaxPingPayload bytes; a
// ping with more is refused with too-large.
func TestPingPayloadBounded(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	most := `"` + strings.Repeat("p", broker.MaxPingPayload-2) + `"`
	alice.mustSend(`{"type":"ping","payload":` + most + `}`)
	if w := alice.expect(broker.TypePong); string(w.Payload) != most {
		t.Fatalf("pong %s", w.raw)
	}
	err := alice.send(`{"type":"ping","id":"p2","payload":"` + strings.Repeat("p", broker.MaxPingPayload) + `"}`)
	if codeOf(err) != broker.CodeTooLarge {
		t.Fatalf("ping with a %d-byte payload: %v, want too-large", broker.MaxPingPayload+2, err)
	}
	alice.expectError(broker.CodeTooLarge, "p2")
}

// TestPongsCountAgainstTheMailbox: a session that sends pings and never
// takes its pongs is ended as a slow consumer, by count and by bytes, with
// its mailbox in memory or in a store.
func TestPongsCountAgainstTheMailbox(t *testing.T) {
	payload := `"` + strings.Repeat("p", broker.MaxPingPayload-2) + `"`
	for _, c := range []struct {
		name  string
		opts  broker.Options
		store bool
	}{
		{"messages", broker.Options{MailboxMessages: 16, Rate: -1}, false},
		{"bytes", broker.Options{MailboxBytes: 4096, Rate: -1}, false},
		{"messages, store", broker.Options{MailboxMessages: 16}, true},
		{"bytes, store", broker.Options{MailboxBytes: 4096}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s *broker.Session
			if c.store {
				n := clusterNode(t, "n1", &broker.MemoryBackplane{}, &broker.MemoryStore{}, c.opts)
				s = joinOn(t, n, "alice").Session
			} else {
				s = join(t, newBroker(t, c.opts), "demo", "alice").s
			}
			s.Attach() // a connection that never writes
			for i := 0; i < 100 && !s.Closed(); i++ {
				_ = s.HandleRaw(context.Background(), []byte(`{"type":"ping","payload":`+payload+`}`))
			}
			eventually(t, "the session is ended as a slow consumer", s.Closed)
			// Its last word may reach the store a moment after it closed.
			after := uint64(0)
			eventually(t, "the slow-consumer error comes", func() bool {
				frames, l, _ := pending(s, after)
				after = l
				return len(frames) > 0 && strings.Contains(string(frames[len(frames)-1]), `"code":"slow-consumer"`)
			})
		})
	}
}

// TestHeldMessagesBounded: what a session may have held for absent peers
// is bounded as its mailbox is, by count and by bytes, and so is what the
// node holds for everyone; past a bound the sender is answered
// peer-unavailable at once. What is delivered or expires frees its room.
func TestHeldMessagesBounded(t *testing.T) {
	t.Run("per session, messages", func(t *testing.T) {
		b := newBroker(t, broker.Options{MailboxMessages: 8, Rate: -1})
		alice := join(t, b, "demo", "alice")
		for i := range 8 {
			alice.mustSend(fmt.Sprintf(`{"type":"message","to":"ghost-%d","id":"m%d"}`, i, i))
		}
		if err := alice.send(`{"type":"message","to":"ghost-8","id":"m8"}`); codeOf(err) != broker.CodePeerUnavailable {
			t.Fatalf("9th held message: %v, want peer-unavailable", err)
		}
		alice.expectError(broker.CodePeerUnavailable, "m8")
		// ghost-0 comes: its message is delivered, and frees a place.
		ghost := join(t, b, "demo", "ghost-0")
		ghost.expect(broker.TypeMessage)
		alice.expect(broker.TypePeerJoined)
		alice.mustSend(`{"type":"message","to":"ghost-9","id":"m9"}`)
		if err := alice.send(`{"type":"message","to":"ghost-10","id":"m10"}`); codeOf(err) != broker.CodePeerUnavailable {
			t.Fatalf("held message past the bound again: %v, want peer-unavailable", err)
		}
	})
	t.Run("per session, bytes", func(t *testing.T) {
		b := newBroker(t, broker.Options{MailboxBytes: 4096, Rate: -1})
		alice := join(t, b, "demo", "alice")
		big := `"` + strings.Repeat("x", 1000) + `"`
		for i := range 3 {
			alice.mustSend(fmt.Sprintf(`{"type":"message","to":"ghost-%d","payload":%s}`, i, big))
		}
		if err := alice.send(`{"type":"message","to":"ghost-3","id":"m3","payload":` + big + `}`); codeOf(err) != broker.CodePeerUnavailable {
			t.Fatalf("held bytes past the bound: %v, want peer-unavailable", err)
		}
	})
	t.Run("per node", func(t *testing.T) {
		b := newBroker(t, broker.Options{HeldMessages: 5, Rate: -1, OfflineHold: 200 * time.Millisecond})
		alice, bob := join(t, b, "demo", "alice"), join(t, b, "demo", "bob")
		for i := range 3 {
			alice.mustSend(fmt.Sprintf(`{"type":"message","to":"ghost-%d"}`, i))
		}
		bob.mustSend(`{"type":"message","to":"ghost-a"}`)
		bob.mustSend(`{"type":"message","to":"ghost-b"}`)
		if err := bob.send(`{"type":"message","to":"ghost-c","id":"c"}`); codeOf(err) != broker.CodePeerUnavailable {
			t.Fatalf("6th message held on a node that holds 5: %v, want peer-unavailable", err)
		}
		// Once they expire, there is room again.
		eventually(t, "the held messages expire", func() bool {
			return bob.send(`{"type":"message","to":"ghost-d"}`) == nil
		})
	})
}

// TestJoinRatePerClient: one client address may join JoinBurst times at
// once, then JoinRate a second; other addresses are not held back, and a
// join that names no address is not counted.
func TestJoinRatePerClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBroker(t, broker.Options{JoinRate: 0.001, JoinBurst: 3, Registerer: reg})
	ctx := context.Background()
	joinFrom := func(client, peer string) error {
		_, err := b.Join(ctx, broker.JoinRequest{Room: "demo", Peer: peer, Client: client})
		return err
	}
	for i := range 3 {
		if err := joinFrom("192.0.2.1", fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := joinFrom("192.0.2.1", "a3"); codeOf(err) != broker.CodeRateLimited {
		t.Fatalf("4th join from one address: %v, want rate-limited", err)
	}
	if n := refusedJoins(t, reg); n != 1 {
		t.Fatalf("refused joins counted: %v, want 1", n)
	}
	if err := joinFrom("192.0.2.2", "b0"); err != nil {
		t.Fatalf("a join from another address: %v", err)
	}
	for i := range 5 {
		if err := joinFrom("", fmt.Sprint("c", i)); err != nil {
			t.Fatalf("a join with no address: %v", err)
		}
	}
	off := newBroker(t, broker.Options{JoinRate: -1, JoinBurst: 1})
	for i := range 5 {
		if _, err := off.Join(ctx, broker.JoinRequest{Room: "demo", Peer: fmt.Sprint("d", i), Client: "192.0.2.1"}); err != nil {
			t.Fatalf("join %d with the join rate off: %v", i, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5678":            "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"[2001:db8:1:2:3::4]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:80": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.1]:80":     "192.0.2.1",
		"[fe80::1%eth0]:80":         "fe80::/64",
		"@":                         "@",
	} {
		if got := broker.ClientAddr(in); got != want {
			t.Errorf("ClientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDedupRemembersBoundedIDs: a session remembers at least its last 2,048
// envelope ids for dropping retries, and not every id it ever sent.
func TestDedupRemembersBoundedIDs(t *testing.T) {
	b := newBroker(t, broker.Options{Rate: -1})
	alice := join(t, b, "demo", "alice")
	pongs := func() int {
		frames, last, err := pending(alice.s, alice.after)
		if err != nil {
			t.Fatal(err)
		}
		alice.after = last
		return len(frames)
	}
	const n = 10000
	for i := range n {
		alice.mustSend(fmt.Sprintf(`{"type":"ping","id":"%064d"}`, i))
		if pongs() != 1 {
			t.Fatalf("ping %d got no pong", i)
		}
	}
	for i := n - 2048; i < n; i++ {
		alice.mustSend(fmt.Sprintf(`{"type":"ping","id":"%064d"}`, i))
		if got := pongs(); got != 0 {
			t.Fatalf("the retry of ping %d of %d was answered", i, n)
		}
	}
	alice.mustSend(fmt.Sprintf(`{"type":"ping","id":"%064d"}`, 0))
	if pongs() != 1 {
		t.Fatal("the first id is still remembered after 10,000 others")
	}
}

// refusedJoins is the count of joins refused with rate-limited in reg.
func refusedJoins(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_envelopes_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == broker.TypeJoin && labels["code"] == string(broker.CodeRateLimited) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
