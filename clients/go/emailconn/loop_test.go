package emailconn_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/emailrig"
	"github.com/switchboard-rtc/switchboard/internal/mailtest"
)

// submit mails a message from from to to through the rig's Postfix, with
// the extra headers and a text body.
func submit(t *testing.T, r *emailrig.Rig, from, to string, headers map[string]string, body string) {
	t.Helper()
	var h mail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*mail.Address{{Address: from}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	if err := h.GenerateMessageID(); err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		h.Set(k, v)
	}
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, body)
	w.Close()
	c, err := smtp.Dial(r.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, &buf); err != nil {
		t.Fatal(err)
	}
}

// handled returns how many mails the broker's mailbox holds, and how many
// of them the broker has handled (flagged \Seen).
func handled(t *testing.T, r *emailrig.Rig) (total, seen int) {
	t.Helper()
	c, err := client.Dial(r.Mail.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Login(r.Mail.Address("switchboard"), mailtest.Password); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", []imap.StatusItem{imap.StatusMessages, imap.StatusUnseen})
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Messages), int(st.Messages) - int(st.Unseen)
}

// TestMailLoopsDie tries the two mail loops a mail robot can fall into: a
// vacation responder answering the broker's mail, and a bounce of the
// broker's mail to an address without a mailbox. The broker answers
// neither, and its peer's client reads neither.
func TestMailLoopsDie(t *testing.T) {
	r := emailrig.Start(t, emailrig.IMAP, emailrig.Options{}, "alice")
	alice := dialEmail(t, r, "alice", switchboard.Options{})

	// A responder on alice's mailbox answers the welcome.
	submit(t, r, r.Address("alice"), emailrig.Broker, map[string]string{
		"Subject": "Out of office", "Auto-Submitted": "auto-replied", "Precedence": "auto_reply",
	}, "I am away until Monday.\r\n")
	// A join from an address without a mailbox: its welcome bounces to
	// the broker.
	submit(t, r, r.Address("ghost"), emailrig.Broker, map[string]string{"Subject": "switchboard", "Content-Type": "application/json"},
		`{"v":1,"type":"join","id":"ghost-join","room":"ghosts","payload":{"peer":"ghost"}}`)

	// The broker's mailbox: alice's join, the auto-reply, the ghost's
	// join, the bounce; all four handled.
	deadline := time.Now().Add(testTimeout)
	for {
		total, seen := handled(t, r)
		if total >= 4 && seen == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker handled %d of %d mails (want 4)\n%s", seen, total, r.Mail.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := r.Mail.Queued(""); n != 1 {
		t.Errorf("%d bounces, want the one of the ghost's welcome", n)
	}
	// The broker mailed two welcomes, and nothing after: neither the
	// auto-reply nor the bounce was answered. Its batch delay is 250 ms;
	// give it ten times that to misbehave.
	time.Sleep(2500 * time.Millisecond)
	if n := r.Mail.Queued(emailrig.Broker); n != 2 {
		t.Errorf("the broker mailed %d mails, want its 2 welcomes\n%s", n, r.Mail.Logs())
	}
	// Alice's client is still joined and reads the broker's next mail.
	dialWebSocket(t, r, "bob")
	await(t, alice, switchboard.TypePeerJoined)
}
