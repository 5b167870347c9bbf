package jsclient_test

import (
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/mailtest"
	emailtransport "github.com/switchboard-rtc/switchboard/transports/email"
)

// TestGoPeerOnEmailAndBrowser: a browser page on WebSocket calls a Go peer
// that signals by mail (Postfix carries it, the broker and the peer read
// their Dovecot mailboxes over IMAP IDLE), and the Go peer echoes over the
// data channel what the page sends.
func TestGoPeerOnEmailAndBrowser(t *testing.T) {
	browser := newBrowser(t)
	mail := mailtest.Start(t, mailtest.Options{Users: []string{"switchboard", "gopher"}})
	off := false
	tr, err := emailtransport.New(emailtransport.Options{
		Address:       "switchboard@localhost",
		Receive:       emailtransport.ReceiveIMAP,
		IMAPURL:       mail.IMAPURL("switchboard"),
		SubmissionURL: mail.SMTPURL(),
		Embedded:      emailtransport.Embedded{Enabled: &off},
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
