package mailtest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-rtc/switchboard/internal/mailtest"
)

// message builds a small mail with go-message.
func message(t *testing.T, from, to, subject, body string) []byte {
	t.Helper()
	var h mail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*mail.Address{{Address: from}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetSubject(subject)
	if err := h.GenerateMessageID(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// send submits msg to the SMTP server at addr, without TLS.
func send(addr, from, to string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// TestDeliveryThroughPostfixSeenByIdle sends a mail through Postfix and sees
// it arrive in Dovecot while an IMAP client idles on the mailbox.
func TestDeliveryThroughPostfixSeenByIdle(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{Users: []string{"alice", "bob"}})

	updates := make(chan client.Update, 16)
	c, err := client.Dial(s.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	c.Updates = updates
	if err := c.Login(s.Address("bob"), mailtest.Password); err != nil {
		t.Fatal(err)
	}
	mbox, err := c.Select("INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	if mbox.Messages != 0 {
		t.Fatalf("a new mailbox holds %d messages", mbox.Messages)
	}
	subject := "hello " + time.Now().Format(time.RFC3339Nano)
	msg := message(t, s.Address("alice"), s.Address("bob"), subject, "hi bob\r\n")
	if err := send(s.SMTPAddr, s.Address("alice"), s.Address("bob"), msg); err != nil {
		t.Fatalf("sending through postfix: %v", err)
	}

	// Idle until an update, then look; again until the mail is there.
	deadline := time.After(60 * time.Second)
	for {
		uids, err := c.UidSearch(imap.NewSearchCriteria())
		if err != nil {
			t.Fatal(err)
		}
		if len(uids) > 0 {
			break
		}
		stop := make(chan struct{})
		idleDone := make(chan error, 1)
		go func() { idleDone <- c.Idle(stop, nil) }()
		select {
		case <-updates:
		case err := <-idleDone:
			t.Fatalf("IDLE ended: %v", err)
		case <-deadline:
			close(stop)
			<-idleDone
			t.Fatalf("no new mail announced by IDLE")
		}
		close(stop)
		if err := <-idleDone; err != nil {
			t.Fatal(err)
		}
	}

	seq := new(imap.SeqSet)
	seq.AddNum(1)
	section := &imap.BodySectionName{}
	msgs := make(chan *imap.Message, 1)
	if err := c.Fetch(seq, []imap.FetchItem{section.FetchItem()}, msgs); err != nil {
		t.Fatal(err)
	}
	m := <-msgs
	if m == nil {
		t.Fatal("no message fetched")
	}
	mr, err := mail.CreateReader(m.GetBody(section))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := mr.Header.Subject(); got != subject {
		t.Errorf("subject %q, want %q", got, subject)
	}
	if !strings.Contains(mr.Header.Get("Received"), "postfix.mailtest.invalid") {
		t.Errorf("the mail did not come through postfix: Received: %s", mr.Header.Get("Received"))
	}
}

// TestUnknownRecipientBounces sees Dovecot refuse a recipient it does not
// know, and Postfix bounce the mail to its sender.
func TestUnknownRecipientBounces(t *testing.T) {
	s := mailtest.Start(t, mailtest.Options{Users: []string{"alice"}})
	msg := message(t, s.Address("alice"), s.Address("nobody"), "to nobody", "hello?\r\n")
	if err := send(s.SMTPAddr, s.Address("alice"), s.Address("nobody"), msg); err != nil {
		t.Fatalf("sending through postfix: %v", err)
	}
	c, err := client.Dial(s.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Login(s.Address("alice"), mailtest.Password); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.Status("INBOX", []imap.StatusItem{imap.StatusMessages})
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bounce arrived\n%s", s.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
