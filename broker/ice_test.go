package broker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// icePayload is the ICE part of a welcome, and an ice-servers answer.
type icePayload struct {
	ICEServers []broker.ICEServer `json:"ice_servers"`
	ICETTL     *int64             `json:"ice_ttl"`
}

func iceOf(t *testing.T, payload []byte) icePayload {
	t.Helper()
	var p icePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkTURN checks that servers end with a TURN entry for peer whose
// credential the secret made, valid until about ttl from now.
func checkTURN(t *testing.T, servers []broker.ICEServer, peer string, secret []byte, ttl time.Duration) {
	t.Helper()
	turn := servers[len(servers)-1]
	expiry, name, _ := strings.Cut(turn.Username, ":")
	exp, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || name != peer {
		t.Fatalf("TURN username %q, want <expiry>:%s", turn.Username, peer)
	}
	if left := time.Until(time.Unix(exp, 0)); left < ttl-time.Minute || left > ttl+time.Second {
		t.Fatalf("TURN credentials valid for %v, want %v", left, ttl)
	}
	if _, cred := broker.TURNCredential(secret, peer, time.Unix(exp, 0)); turn.Credential != cred {
		t.Fatalf("TURN credential %q, want %q", turn.Credential, cred)
	}
}

func TestTURNCredential(t *testing.T) {
	// The TURN REST API scheme, as coturn checks it: base64(HMAC-SHA1(secret, username)).
	user, cred := broker.TURNCredential([]byte("north"), "alice", time.Unix(1700000000, 0))
	if user != "1700000000:alice" || cred != "Cd/49soE35ICqcJF/bCTn8Z4OyE=" {
		t.Fatalf("TURNCredential = %q, %q", user, cred)
	}
	if user, _ := broker.TURNCredential([]byte("north"), "", time.Unix(1700000000, 0)); user != "1700000000" {
		t.Fatalf("username without a peer = %q", user)
	}
}

func TestWelcomeICEServers(t *testing.T) {
	secret := []byte("s3cret")
	stun := broker.ICEServer{URLs: []string{"stun:stun.example:3478"}}
	b := newBroker(t, broker.Options{ICE: broker.ICE{
		Servers:    []broker.ICEServer{stun},
		TURNURLs:   []string{"turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp"},
		TURNSecret: secret,
		TURNTTL:    2 * time.Hour,
	}})
	alice := join(t, b, "demo", "alice")
	p := iceOf(t, parse(t, alice.joined.Welcome).Payload)
	if len(p.ICEServers) != 2 || p.ICEServers[0].URLs[0] != stun.URLs[0] || p.ICEServers[0].Username != "" ||
		len(p.ICEServers[1].URLs) != 2 || p.ICETTL == nil || *p.ICETTL != 7200 {
		t.Fatalf("welcome %s", alice.joined.Welcome)
	}
	checkTURN(t, p.ICEServers, "alice", secret, 2*time.Hour)
	if strings.Contains(string(alice.joined.Welcome), string(secret)) {
		t.Fatalf("the welcome shows the TURN secret: %s", alice.joined.Welcome)
	}

	// Asked again, the broker answers at once, with no seq, fresh credentials.
	alice.mustSend(`{"type":"ice-servers","id":"i1"}`)
	w := alice.expect(broker.TypeICEServers)
	if w.Seq != 0 || w.From != "" {
		t.Fatalf("ice-servers answer %s", w.raw)
	}
	p = iceOf(t, w.Payload)
	if len(p.ICEServers) != 2 || *p.ICETTL != 7200 {
		t.Fatalf("ice-servers answer %s", w.raw)
	}
	checkTURN(t, p.ICEServers, "alice", secret, 2*time.Hour)
	// A payload is ignored; the answer takes no seq.
	alice.mustSend(`{"type":"ice-servers","payload":{"anything":1}}`)
	alice.expect(broker.TypeICEServers)
	join(t, b, "demo", "bob")
	if w := alice.expect(broker.TypePeerJoined); w.Seq != 2 {
		t.Fatalf("peer-joined after ice-servers answers: %s", w.raw)
	}

	// A resumed welcome carries fresh credentials too.
	alice.att.Detach()
	j, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "alice", Transport: "test",
		Resume: &broker.Resume{Session: alice.s.Secret(), LastSeq: 2}})
	if err != nil {
		t.Fatal(err)
	}
	p = iceOf(t, parse(t, j.Welcome).Payload)
	if len(p.ICEServers) != 2 {
		t.Fatalf("resumed welcome %s", j.Welcome)
	}
	checkTURN(t, p.ICEServers, "alice", secret, 2*time.Hour)
}

func TestWelcomeWithoutICEServers(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	w := parse(t, alice.joined.Welcome)
	if !strings.Contains(string(w.Payload), `"ice_servers":[]`) || strings.Contains(string(w.Payload), "ice_ttl") {
		t.Fatalf("welcome without ICE servers: %s", w.raw)
	}
	alice.mustSend(`{"type":"ice-servers"}`)
	if w := alice.expect(broker.TypeICEServers); string(w.Payload) != `{"ice_servers":[]}` {
		t.Fatalf("ice-servers answer %s", w.raw)
	}
}

func TestICEServersRateLimited(t *testing.T) {
	// Asking for credentials counts against the rate limit like any envelope.
	b := newBroker(t, broker.Options{Rate: 1, Burst: 2, ICE: broker.ICE{TURNURLs: []string{"turn:t"}, TURNSecret: []byte("x")}})
	alice := join(t, b, "demo", "alice")
	alice.mustSend(`{"type":"ice-servers"}`)
	alice.mustSend(`{"type":"ice-servers"}`)
	if err := alice.send(`{"type":"ice-servers","id":"third"}`); codeOf(err) != broker.CodeRateLimited {
		t.Fatalf("third ice-servers in a burst of 2: %v", err)
	}
	alice.expect(broker.TypeICEServers)
	alice.expect(broker.TypeICEServers)
	alice.expectError(broker.CodeRateLimited, "third")
}

func TestCheckToken(t *testing.T) {
	secret := []byte("k")
	b := newBroker(t, broker.Options{TokenSecret: secret})
	tok, _ := broker.NewToken(secret, "demo", "alice", time.Minute)
	if peer, err := b.CheckToken(tok, "", ""); err != nil || peer != "alice" {
		t.Fatalf("CheckToken(valid, any room) = %q, %v", peer, err)
	}
	if _, err := b.CheckToken(tok, "other", ""); codeOf(err) != broker.CodeForbidden {
		t.Fatalf("CheckToken(another room) = %v", err)
	}
	if _, err := b.CheckToken("", "", ""); codeOf(err) != broker.CodeUnauthorized {
		t.Fatalf("CheckToken(no token) = %v", err)
	}
	if _, err := b.CheckToken(tok+"x", "", ""); codeOf(err) != broker.CodeUnauthorized {
		t.Fatalf("CheckToken(bad signature) = %v", err)
	}
}

// TestICEAnswersCountAgainstTheMailbox: a session that asks for ICE
// servers and never takes the answers is ended as a slow consumer, as one
// that never takes its pongs, by count and by bytes.
func TestICEAnswersCountAgainstTheMailbox(t *testing.T) {
	ice := broker.ICE{TURNURLs: []string{"turn:turn.example:3478?transport=udp"}, TURNSecret: []byte("s3cret")}
	for _, c := range []struct {
		name string
		opts broker.Options
	}{
		{"messages", broker.Options{MailboxMessages: 16, Rate: -1, ICE: ice}},
		{"bytes", broker.Options{MailboxBytes: 2048, Rate: -1, ICE: ice}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := join(t, newBroker(t, c.opts), "demo", "alice").s
			s.Attach() // a connection that never writes
			for i := 0; i < 100 && !s.Closed(); i++ {
				_ = s.HandleRaw(context.Background(), []byte(`{"type":"ice-servers"}`))
			}
			eventually(t, "the session is ended as a slow consumer", s.Closed)
			frames, _, _ := pending(s, 0)
			if len(frames) == 0 || !strings.Contains(string(frames[len(frames)-1]), `"code":"slow-consumer"`) {
				t.Fatalf("last frames %q", frames)
			}
		})
	}
}

// BenchmarkServersFor: minting a peer's TURN credentials, which every
// welcome and ice-servers answer does.
func BenchmarkServersFor(b *testing.B) {
	ice := broker.ICE{
		Servers:    []broker.ICEServer{{URLs: []string{"stun:stun.example:3478"}}},
		TURNURLs:   []string{"turn:turn.example:3478?transport=udp", "turns:turn.example:5349"},
		TURNSecret: []byte("a-secret-of-some-length"),
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ice.ServersFor("alice", now)
	}
}

// BenchmarkJoinLeave: a join (and its welcome) and a leave, without and
// with TURN credentials in the welcome.
func BenchmarkJoinLeave(b *testing.B) {
	for _, c := range []struct {
		name string
		ice  broker.ICE
	}{
		{"no-ice", broker.ICE{}},
		{"turn", broker.ICE{TURNURLs: []string{"turn:turn.example:3478"}, TURNSecret: []byte("a-secret-of-some-length")}},
	} {
		b.Run(c.name, func(b *testing.B) {
			br := broker.New(broker.Options{Logger: quietLogger(), ICE: c.ice, Rate: -1})
			defer br.Close(broker.ReasonKicked)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				j, err := br.Join(ctx, broker.JoinRequest{Room: "bench", Peer: "alice", Transport: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				j.Session.Close(broker.ReasonLeave)
			}
		})
	}
}
