package emailconn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	_ "github.com/switchboard-rtc/switchboard/clients/go/emailconn"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/emailrig"
)

// testTimeout bounds each wait of these tests, on a slow shared machine.
const testTimeout = 60 * time.Second

func dialEmail(t testing.TB, r *emailrig.Rig, user string, opts switchboard.Options) *switchboard.Client {
	t.Helper()
	opts.Transport = "email"
	if opts.Room == "" {
		opts.Room = "mail"
	}
	if opts.Peer == "" {
		opts.Peer = user
	}
	opts.HandshakeTimeout = testTimeout
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := switchboard.Dial(ctx, r.PeerURL(user), opts)
	if err != nil {
		if r.Mail != nil {
			t.Logf("mail logs:\n%s", r.Mail.Logs())
		}
		t.Fatalf("%s joining over email: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialWebSocket(t testing.TB, r *emailrig.Rig, peer string) *switchboard.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := switchboard.Dial(ctx, r.Server.URL, switchboard.Options{Room: "mail", Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// await returns the first envelope of type typ that c receives.
func await(t testing.TB, c *switchboard.Client, typ string) switchboard.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		env, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s waiting for %s: %v", c.Peer(), typ, err)
		}
		if env.Type == typ {
			return env
		}
	}
}

func send(t testing.TB, c *switchboard.Client, to, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.SendMessage(ctx, to, text); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, env switchboard.Envelope) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(env.Payload, &s); err != nil {
		t.Fatalf("payload %s: %v", env.Payload, err)
	}
	return s
}

// TestTwoEmailPeers has two peers on email talk through the broker, with
// the broker's mail travelling each of the three ways.
func TestTwoEmailPeers(t *testing.T) {
	for _, mode := range []emailrig.Mode{emailrig.IMAP, emailrig.SMTP, emailrig.Embedded} {
		t.Run(string(mode), func(t *testing.T) {
			r := emailrig.Start(t, mode, emailrig.Options{}, "alice", "bob")
			alice := dialEmail(t, r, "alice", switchboard.Options{})
			bob := dialEmail(t, r, "bob", switchboard.Options{})
			if got := await(t, alice, switchboard.TypePeerJoined); got.From != "" && got.From != "bob" {
				t.Logf("peer-joined from %q", got.From)
			}
			send(t, alice, "bob", "hello bob")
			if got := text(t, await(t, bob, switchboard.TypeMessage)); got != "hello bob" {
				t.Fatalf("bob got %q", got)
			}
			send(t, bob, "alice", "hello alice")
			if got := text(t, await(t, alice, switchboard.TypeMessage)); got != "hello alice" {
				t.Fatalf("alice got %q", got)
			}
		})
	}
}

// TestEmailAndWebSocket has a peer on email and one on WebSocket talk.
func TestEmailAndWebSocket(t *testing.T) {
	r := emailrig.Start(t, emailrig.IMAP, emailrig.Options{}, "alice")
	alice := dialEmail(t, r, "alice", switchboard.Options{})
	bob := dialWebSocket(t, r, "bob")
	await(t, alice, switchboard.TypePeerJoined)
	send(t, bob, "alice", "over the web")
	if got := text(t, await(t, alice, switchboard.TypeMessage)); got != "over the web" {
		t.Fatalf("alice got %q", got)
	}
	send(t, alice, "bob", "by mail")
	if got := text(t, await(t, bob, switchboard.TypeMessage)); got != "by mail" {
		t.Fatalf("bob got %q", got)
	}
}

// TestResumeAcrossDovecotRestart restarts Dovecot under a peer on email:
// its IMAP connection breaks, it resumes its session, and nothing sent to
// it meanwhile is lost.
func TestResumeAcrossDovecotRestart(t *testing.T) {
	r := emailrig.Start(t, emailrig.IMAP, emailrig.Options{}, "alice")
	states := make(chan switchboard.State, 16)
	alice := dialEmail(t, r, "alice", switchboard.Options{OnStateChange: func(s switchboard.State) { states <- s }})
	bob := dialWebSocket(t, r, "bob")
	await(t, alice, switchboard.TypePeerJoined)

	r.Mail.StopDovecot()
	send(t, bob, "alice", "while dovecot was down")
	r.Mail.StartDovecot()
	r.Mail.Flush()

	if got := text(t, await(t, alice, switchboard.TypeMessage)); got != "while dovecot was down" {
		t.Fatalf("alice got %q", got)
	}
	timeout := time.After(testTimeout)
	for seen := false; !seen; {
		select {
		case s := <-states:
			seen = s == switchboard.StateConnected
		case <-timeout:
			t.Fatal("alice did not resume after the restart")
		}
	}
	send(t, alice, "bob", "back")
	if got := text(t, await(t, bob, switchboard.TypeMessage)); got != "back" {
		t.Fatalf("bob got %q", got)
	}
}

// TestManyMessagesToEmailPeer sends a peer on email more envelopes than the
// broker mails ahead of an acknowledgement (512): the peer acknowledges as
// they come, well before its 30 s ack delay, and gets them all in order.
func TestManyMessagesToEmailPeer(t *testing.T) {
	r := emailrig.Start(t, emailrig.Embedded, emailrig.Options{}, "alice")
	alice := dialEmail(t, r, "alice", switchboard.Options{})
	bob := dialWebSocket(t, r, "bob")
	await(t, alice, switchboard.TypePeerJoined)
	const n = 700
	start := time.Now()
	for i := range n {
		send(t, bob, "alice", fmt.Sprint(i))
	}
	for i := range n {
		if got := text(t, await(t, alice, switchboard.TypeMessage)); got != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("%d messages took %v: the acknowledgements waited", n, took)
	}
}
