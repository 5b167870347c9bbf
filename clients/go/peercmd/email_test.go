package peercmd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/emailrig"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// transportArgs returns the flags of a peer on transport with id peer.
func transportArgs(r *emailrig.Rig, redisURL, transport, peer string) []string {
	switch transport {
	case "email":
		return []string{"-transport", "email", "-imap", r.IMAPURL(peer), "-smtp", r.SMTPURL(), "-broker-address", emailrig.Broker}
	case "redis":
		return []string{"-transport", "redis", "-url", redisURL}
	}
	return []string{"-transport", transport, "-url", r.Server.URL}
}

// callAndEcho has caller, on one transport, call answerer, on another, over
// a data channel that echoes one message, and checks that it came back.
func callAndEcho(t *testing.T, r *emailrig.Rig, redisURL, room, callerT, caller, answererT, answerer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	common := []string{"-room", room, "-loopback"}
	bobArgs := append(append(append([]string{}, common...), "-peer", answerer, "-echo", "-exit-after-message"), transportArgs(r, redisURL, answererT, answerer)...)
	bob := start(ctx, bobArgs...)
	bob.waitFor(t, answerer, "joined room="+room)
	text := fmt.Sprintf("hello from %s over %s", caller, callerT)
	aliceArgs := append(append(append([]string{}, common...), "-peer", caller, "-call", answerer, "-send", text, "-exit-after-message"), transportArgs(r, redisURL, callerT, caller)...)
	alice := start(ctx, aliceArgs...)
	alice.wait(t, caller)
	bob.wait(t, answerer)
	if want := fmt.Sprintf("message-received peer=%s text=%q", answerer, text); !alice.out.has(want) {
		t.Errorf("%s did not print %q; printed:\n%s", caller, want, alice.out.String())
	}
	if want := fmt.Sprintf("message-sent peer=%s text=%q echo=true", caller, text); !bob.out.has(want) {
		t.Errorf("%s did not print %q; printed:\n%s", answerer, want, bob.out.String())
	}
	for _, p := range []struct {
		name, transport string
		out             *run
	}{{caller, callerT, alice}, {answerer, answererT, bob}} {
		// A peer on email sends one offer or answer with every candidate
		// in it: it trickles none.
		if trickled := p.out.out.has("candidate-sent "); trickled == (p.transport == "email") {
			t.Errorf("%s on %s trickled candidates: %v; printed:\n%s", p.name, p.transport, trickled, p.out.out.String())
		}
	}
}

// TestEveryPairOfTransports opens a data channel between two peers for
// each of the 10 pairs of WebSocket, long-polling, Redis and email (the
// broker reading its mail from Dovecot over IMAP IDLE, Postfix carrying
// it), and echoes a message over it.
func TestEveryPairOfTransports(t *testing.T) {
	rs := redistest.Start(t)
	rt, err := redis.New(redis.Options{Client: rs.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	transports := []string{"websocket", "longpoll", "redis", "email"}
	var users []string
	for i := range 10 {
		users = append(users, fmt.Sprint("caller", i), fmt.Sprint("answerer", i))
	}
	r := emailrig.Start(t, emailrig.IMAP, emailrig.Options{Transports: []broker.Transport{rt}}, users...)
	if !redistest.WaitFor(10*time.Second, func() bool { return rt.Ready() == nil }) {
		t.Fatalf("the Redis transport is not ready: %v", rt.Ready())
	}
	n := 0
	for i, a := range transports {
		for _, b := range transports[i:] {
			k := n
			n++
			t.Run(a+"-"+b, func(t *testing.T) {
				callAndEcho(t, r, rs.URL(), fmt.Sprint("pair", k), a, fmt.Sprint("caller", k), b, fmt.Sprint("answerer", k))
			})
		}
	}
}

// TestEmailCallBrokerModes has a peer on email and one on WebSocket call
// each other with the broker receiving its mail as an SMTP server behind
// Postfix, and with only the broker's embedded mail server running.
func TestEmailCallBrokerModes(t *testing.T) {
	for _, mode := range []emailrig.Mode{emailrig.SMTP, emailrig.Embedded} {
		t.Run(string(mode), func(t *testing.T) {
			r := emailrig.Start(t, mode, emailrig.Options{}, "alice", "bob")
			callAndEcho(t, r, "", "call-ws", "websocket", "carol", "email", "bob")
			callAndEcho(t, r, "", "call-email", "email", "alice", "websocket", "dave")
		})
	}
}

// TestDovecotRestartDuringCallSetup restarts Dovecot, which holds the
// mailboxes of the broker and of the peer on email, right after the offer
// left: the IMAP connections of both break and the answer waits in
// Postfix's queue, and the call still completes.
func TestDovecotRestartDuringCallSetup(t *testing.T) {
	r := emailrig.Start(t, emailrig.IMAP, emailrig.Options{}, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bob := start(ctx, append([]string{"-room", "restart", "-loopback", "-peer", "bob", "-echo", "-exit-after-message"},
		transportArgs(r, "", "email", "bob")...)...)
	bob.waitFor(t, "bob", "joined room=restart")
	alice := start(ctx, append([]string{"-room", "restart", "-loopback", "-peer", "alice", "-call", "bob", "-send", "after the restart", "-exit-after-message"},
		transportArgs(r, "", "websocket", "alice")...)...)
	alice.waitFor(t, "alice", "offer-sent peer=bob")
	r.Mail.RestartDovecot()
	r.Mail.Flush()
	alice.waitForLong(t, "alice", `message-received peer=bob text="after the restart"`, 90*time.Second)
	alice.wait(t, "alice")
	bob.wait(t, "bob")
	if !bob.out.has("signaling-reconnecting") {
		t.Logf("bob's IMAP connection outlived the restart; printed:\n%s", bob.out.String())
	}
}
