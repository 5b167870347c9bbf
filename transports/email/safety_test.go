package email

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-rtc/switchboard/broker"
)

// joinAlice joins alice over email and returns her inbox and session secret.
func joinAlice(t *testing.T, r *rig, room string) (*inbox, string) {
	t.Helper()
	in := &inbox{r: r, addr: alice}
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"`+room+`","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	w := in.nextOfType(t, "welcome")
	return in, w["payload"].(map[string]any)["session"].(string)
}

// TestNoMailLoop: bounces and automatic mail are never answered, and the
// broker never handles its own mail.
func TestNoMailLoop(t *testing.T) {
	r := newRig(t, Options{Receive: ReceiveSMTP, SMTPListen: "127.0.0.1:0"}, broker.Options{})
	bounce := "From: MAILER-DAEMON@localhost\r\nTo: " + DefaultAddress + "\r\nMessage-ID: <b1@x>\r\n\r\nnot json"
	c, err := smtp.Dial(r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("", []string{DefaultAddress}, strings.NewReader(bounce)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	sent := []string{
		"Auto-Submitted: auto-replied\r\n", "Precedence: bulk\r\n", "Precedence: junk\r\n", "Return-Path: <>\r\n",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
	}
	for _, h := range sent {
		raw := "From: " + alice + "\r\nTo: " + DefaultAddress + "\r\nMessage-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@x>\r\n" + h + "\r\nnot json\r\n"
		if err := submit(t, r.smtp, alice, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	// The broker's own mail, sent back to it (an auto-forward, say).
	own, _ := BuildMail(Outgoing{From: DefaultAddress, To: DefaultAddress, Room: "r", MessageID: "own@localhost", Frames: [][]byte{[]byte(`{"type":"pong"}`)}})
	if err := submit(t, r.smtp, DefaultAddress, own); err != nil {
		t.Fatal(err)
	}
	own = []byte(strings.Replace(string(own), "Auto-Submitted: auto-generated\r\n", "", 1))
	if err := submit(t, r.smtp, DefaultAddress, own); err != nil {
		t.Fatal(err)
	}
	// A mail that is answered, after all of those: once its answer is
	// there, nothing else was sent.
	if err := submit(t, r.smtp, "carol@localhost", peerMail("carol@localhost", DefaultAddress, "", "not json")); err != nil {
		t.Fatal(err)
	}
	(&inbox{r: r, addr: "carol@localhost"}).nextOfType(t, "error")
	waitFor(t, "the error mail to be counted", func() bool { return testutil.ToFloat64(r.tr.m.out) >= 1 })
	if n := testutil.ToFloat64(r.tr.m.out); n != 1 {
		t.Fatalf("%v mails sent, want only carol's error", n)
	}
	if n := testutil.ToFloat64(r.tr.m.drop.WithLabelValues("automatic")); n != 8 {
		t.Fatalf("%v automatic mails ignored, want 8", n)
	}
	for _, a := range []string{alice, DefaultAddress, "mailer-daemon@localhost"} {
		if m := r.tr.MailServer().Messages(a); len(m) != 0 {
			t.Fatalf("%s got %d mails", a, len(m))
		}
	}
}

// TestDuplicatesAndErrorMailRate: a mail seen again (same Message-ID) is
// dropped, and a sender gets one error mail an hour, however many bad
// mails it sends.
func TestDuplicatesAndErrorMailRate(t *testing.T) {
	r := newRig(t, Options{Receive: ReceiveSMTP, SMTPListen: "127.0.0.1:0"}, broker.Options{})
	in, session := joinAlice(t, r, "demo")
	ping := peerMail(alice, DefaultAddress, session, `{"type":"ping","payload":"once"}`)
	for range 3 {
		if err := submit(t, r.smtp, alice, ping); err != nil {
			t.Fatal(err)
		}
	}
	if e := in.nextOfType(t, "pong"); e["payload"] != "once" {
		t.Fatal(e)
	}
	if n := testutil.ToFloat64(r.tr.m.drop.WithLabelValues("duplicate")); n != 2 {
		t.Fatalf("%v duplicates dropped, want 2", n)
	}
	// In the session: a malformed mail is refused in the stream, each time.
	for range 2 {
		if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, "not json")); err != nil {
			t.Fatal(err)
		}
		if e := in.nextOfType(t, "error"); e["payload"].(map[string]any)["code"] != "bad-request" {
			t.Fatal(e)
		}
	}
	// Outside one: an unknown session, five times, is answered once.
	mal := "mallory@localhost"
	for range 5 {
		if err := submit(t, r.smtp, mal, peerMail(mal, DefaultAddress, "0123456789abcdef0123456789abcdef", `{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// And a join, answered as always, shows that the five were handled.
	if err := submit(t, r.smtp, mal, peerMail(mal, DefaultAddress, "", `{"type":"join","room":"bad room"}`)); err != nil {
		t.Fatal(err)
	}
	// The two answers are mailed each on its own: in either order.
	mi := &inbox{r: r, addr: mal}
	codes := map[any]bool{}
	for range 2 {
		codes[mi.nextOfType(t, "error")["payload"].(map[string]any)["code"]] = true
	}
	if !codes["unauthorized"] || !codes["bad-request"] {
		t.Fatalf("mallory's answers: %v", codes)
	}
	if got := len(r.tr.MailServer().Messages(mal)); got != 2 {
		t.Fatalf("mallory got %d mails, want 2", got)
	}
	if n := testutil.ToFloat64(r.tr.m.drop.WithLabelValues("refused-quietly")); n != 4 {
		t.Fatalf("%v refusals kept quiet, want 4", n)
	}
}

// TestMailBounds: the SMTP server refuses a mail over max_mail_bytes and
// recipients other than the broker's address; a mail of too many
// envelopes is refused in the stream.
func TestMailBounds(t *testing.T) {
	r := newRig(t, Options{Receive: ReceiveSMTP, SMTPListen: "127.0.0.1:0", MaxMailBytes: 4096}, broker.Options{})
	var se *smtp.SMTPError
	big := peerMail(alice, DefaultAddress, "", `{"type":"join","room":"r","payload":{"meta":{"x":"`+strings.Repeat("x", 5000)+`"}}}`)
	if err := submit(t, r.smtp, alice, big); !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("a mail over max_mail_bytes: %v", err)
	}
	c, err := smtp.Dial(r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("someone@elsewhere.example", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("another recipient: %v", err)
	}
	in, session := joinAlice(t, r, "r")
	envs := make([]string, MaxEnvelopesPerMail+1)
	for i := range envs {
		envs[i] = `{"type":"ping"}`
	}
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, envs...)); err != nil {
		t.Fatal(err)
	}
	if e := in.nextOfType(t, "error"); e["payload"].(map[string]any)["code"] != "bad-request" {
		t.Fatal(e)
	}
}

// TestIdleTimeout: an email peer that mails nothing for idle_timeout
// times out, and the others hear peer-left with reason timeout.
func TestIdleTimeout(t *testing.T) {
	r := newRig(t, Options{IdleTimeout: 300 * time.Millisecond}, broker.Options{})
	// Bob is there first, so that he sees alice come and go, however
	// slowly her welcome travels.
	bob, err := r.b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"r","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	bi := &inproc{s: bob.Session, after: 1}
	receiveType(t, bi, "peer-joined")
	left := receiveType(t, bi, "peer-left")
	if p := left["payload"].(map[string]any); p["peer"] != "alice" || p["reason"] != "timeout" {
		t.Fatal(left)
	}
}

// TestResumeOverEmail: a peer resumes with last_seq and gets what it
// missed after the resumed welcome, in the same thread.
func TestResumeOverEmail(t *testing.T) {
	r := newRig(t, Options{}, broker.Options{})
	in, session := joinAlice(t, r, "r")
	bob, err := r.b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	in.nextOfType(t, "peer-joined")
	for i := range 3 {
		if err := bob.Session.HandleRaw(context.Background(), []byte(fmt.Sprintf(`{"type":"message","to":"alice","payload":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	first := in.nextOfType(t, "message")
	seq := int(first["seq"].(float64))
	resume := fmt.Sprintf(`{"type":"join","room":"r","payload":{"peer":"alice","resume":{"session":%q,"last_seq":%d}}}`, session, seq)
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, resume)); err != nil {
		t.Fatal(err)
	}
	w := in.nextOfType(t, "welcome")
	if p := w["payload"].(map[string]any); p["resumed"] != true || p["session"] != session {
		t.Fatal(w)
	}
	for i := 1; i < 3; i++ {
		m := in.next(t)
		if m["type"] != "message" || m["payload"].(float64) != float64(i) || int(m["seq"].(float64)) != seq+i {
			t.Fatalf("after the resume: %v", m)
		}
	}
	// Another address cannot resume alice's session.
	if err := submit(t, r.smtp, "mallory@localhost", peerMail("mallory@localhost", DefaultAddress, "", resume)); err != nil {
		t.Fatal(err)
	}
	if e := (&inbox{r: r, addr: "mallory@localhost"}).nextOfType(t, "error"); e["payload"].(map[string]any)["code"] != "unauthorized" {
		t.Fatal(e)
	}
}

// TestUIDValidityChange: when the mailbox's UIDVALIDITY changes (the server
// rebuilt it, numbering mail from 1 again), the broker reconnects, starts
// over from the unseen mail, and misses nothing.
func TestUIDValidityChange(t *testing.T) {
	r := newRig(t, Options{}, broker.Options{})
	in, session := joinAlice(t, r, "r")
	for i := range 3 {
		if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, fmt.Sprintf(`{"type":"ping","payload":%d}`, i))); err != nil {
			t.Fatal(err)
		}
		in.nextOfType(t, "pong")
	}
	srv := r.tr.MailServer()
	srv.RenewUIDValidity()
	srv.DropIMAPConnections()
	waitFor(t, "the IMAP receiver to reconnect", func() bool {
		return testutil.ToFloat64(r.tr.m.reconnects) > 0 && r.tr.Ready() == nil
	})
	// The new mail has UID 1, below the last UID handled before.
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, `{"type":"ping","payload":"after"}`)); err != nil {
		t.Fatal(err)
	}
	if e := in.nextOfType(t, "pong"); e["payload"] != "after" {
		t.Fatal(e)
	}
}

// TestSubmissionDown: a mail that cannot be sent within the resume window
// ends the session, and /readyz reports the submission server.
func TestSubmissionDown(t *testing.T) {
	off := false
	tr, err := New(Options{Receive: ReceiveSMTP, SMTPListen: "127.0.0.1:0", SubmissionURL: "smtp://127.0.0.1:1",
		ResumeWindow: 500 * time.Millisecond, BatchDelay: 10 * time.Millisecond, Embedded: Embedded{Enabled: &off}})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, b) }()
	defer func() { cancel(); <-done; b.Close(broker.ReasonTimeout) }()
	waitFor(t, "the submission server to be reported down", func() bool {
		err := tr.Ready()
		return err != nil && strings.Contains(err.Error(), "submission")
	})
	bob, err := b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := submit(t, tr.SMTPAddr(), alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"r","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	bi := &inproc{s: bob.Session, after: 1}
	receiveType(t, bi, "peer-joined")
	left := receiveType(t, bi, "peer-left")
	if p := left["payload"].(map[string]any); p["peer"] != "alice" || p["reason"] != "timeout" {
		t.Fatal(left)
	}
	if testutil.ToFloat64(tr.m.retries) == 0 {
		t.Fatal("no send retries counted")
	}
}

func TestRecentIsBounded(t *testing.T) {
	r := newRecent(3, time.Hour)
	now := time.Now()
	for i := range 5 {
		if r.checkAndAdd(fmt.Sprint(i), now) {
			t.Fatalf("%d seen", i)
		}
	}
	if r.len() != 3 || r.checkAndAdd("0", now) || !r.checkAndAdd("4", now) {
		t.Fatalf("len %d", r.len())
	}
	if r.checkAndAdd("4", now.Add(2*time.Hour)) {
		t.Fatal("remembered past the window")
	}
}

// TestBatching: an offer and its candidates, sent at once, reach an email
// peer as one mail.
func TestBatching(t *testing.T) {
	r := newRig(t, Options{BatchDelay: time.Second}, broker.Options{})
	in, _ := joinAlice(t, r, "r")
	bob, err := r.b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	in.nextOfType(t, "peer-joined")
	before := len(r.tr.MailServer().Messages(alice))
	envs := []string{`{"type":"offer","to":"alice","payload":{"type":"offer","sdp":"v=0\r\n"}}`}
	for i := range 5 {
		envs = append(envs, fmt.Sprintf(`{"type":"candidate","to":"alice","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	envs = append(envs, `{"type":"candidate","to":"alice","payload":null}`)
	for _, e := range envs {
		if err := bob.Session.HandleRaw(context.Background(), []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	in.nextOfType(t, "offer")
	for range 6 {
		if e := in.next(t); e["type"] != "candidate" {
			t.Fatal(e)
		}
	}
	if n := len(r.tr.MailServer().Messages(alice)) - before; n != 1 {
		t.Fatalf("the offer and its candidates came in %d mails, want 1", n)
	}
}
