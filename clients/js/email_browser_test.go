package js_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/mailtest"
	"github.com/switchboard-rtc/switchboard/transports/email"
)

// startEmailBroker runs the test broker with its email transport on a real
// Dovecot and Postfix, the broker reading its mailbox on IMAP IDLE, and a
// mailbox for the Go peer "gopher".
func startEmailBroker(t *testing.T) (string, *mailtest.Server) {
	t.Helper()
	mail := mailtest.Start(t, mailtest.Options{Users: []string{"switchboard", "gopher"}})
	off := false
	tr, err := email.New(email.Options{
		Address:       "switchboard@localhost",
		Receive:       email.ReceiveIMAP,
		IMAPURL:       mail.IMAPURL("switchboard"),
		SubmissionURL: mail.SMTPURL(),
		Embedded:      email.Embedded{Enabled: &off},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := startBrokerWith(t, brokerSetup{extra: []broker.Transport{tr}})
	deadline := time.Now().Add(30 * time.Second)
	for tr.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the email transport is not ready: %v", tr.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return base, mail
}

// TestGoPeerOnEmailAndBrowser: a browser page on WebSocket calls a Go peer
// that signals by mail (Postfix carries it, the broker and the peer read
// their Dovecot mailboxes over IMAP IDLE), and the Go peer echoes over the
// data channel what the page sends.
func TestGoPeerOnEmailAndBrowser(t *testing.T) {
	browser := newBrowser(t)
	base, mail := startEmailBroker(t)
	out := runPeer(t, "-transport", "email", "-imap", mail.IMAPURL("gopher"), "-smtp", mail.SMTPURL(),
		"-broker-address", "switchboard@localhost", "-room", "e2b", "-peer", "gopher", "-echo")
	waitLine(t, out, "joined room=e2b peer=gopher transport=email", 30*time.Second)
	page := tab(t, browser, base+"/e2e.html")
	if got := start(t, page, startArgs{Room: "e2b", Peer: "browser", Transport: "websocket", Call: "gopher", Greeting: "hi over email"}); got != "websocket" {
		t.Fatalf("page transport %q", got)
	}
	// The Go peer echoes verbatim: the page hears its own words back.
	waitFor(t, page, "the Go peer's echo", `st.messages.includes("hi over email")`, 60*time.Second)
	waitLine(t, out, `message-received peer=browser text="hi over email"`, 5*time.Second)
	waitLine(t, out, `message-sent peer=browser text="hi over email" echo=true`, 5*time.Second)
	// One answer, with every candidate in it: nothing trickled by mail.
	if out.has("candidate-sent ") {
		t.Errorf("the Go peer on email trickled candidates:\n%s", out)
	}
}

// TestHandOverToBrowser: a Go peer on email calls a browser page on
// WebSocket with a hand-over channel; once the call is up, the page adds a
// transceiver, and that renegotiation goes over the hand-over channel: no
// offer, answer or candidate goes through the broker.
func TestHandOverToBrowser(t *testing.T) {
	browser := newBrowser(t)
	base, mail := startEmailBroker(t)
	page := tab(t, browser, base+"/e2e.html")
	start(t, page, startArgs{Room: "handover", Peer: "browser", Transport: "websocket", Echo: true})
	out := runPeer(t, "-transport", "email", "-imap", mail.IMAPURL("gopher"), "-smtp", mail.SMTPURL(),
		"-broker-address", "switchboard@localhost", "-room", "handover", "-peer", "gopher", "-call", "browser", "-send", "hi from the mailbox")
	waitFor(t, page, "the Go peer's message", `st.messages.includes("hi from the mailbox")`, 60*time.Second)
	waitFor(t, page, "the hand-over", `st.link.handedOver === true`, 30*time.Second)
	waitLine(t, out, "handed-over peer=browser", 30*time.Second)
	eval[bool](t, page, `(() => {
		st.brokerSignals = 0;
		st.sig.addEventListener("message", ({ detail: env }) => {
			if (["offer", "answer", "candidate"].includes(env.type)) st.brokerSignals++;
		});
		st.link.pc.addTransceiver("video", { direction: "recvonly" });
		return true;
	})()`)
	waitLine(t, out, "answer-sent peer=browser", 30*time.Second)
	waitFor(t, page, "the renegotiation", `st.link.pc.signalingState === "stable" && st.link.pc.getTransceivers().length === 1`, 30*time.Second)
	if n := eval[int](t, page, `st.brokerSignals`); n != 0 {
		t.Errorf("%d signals came through the broker after the hand-over", n)
	}
	if n := strings.Count(out.String(), "offer-received peer=browser"); n != 1 {
		t.Errorf("the Go peer took %d offers, want the page's one:\n%s", n, out)
	}
}
