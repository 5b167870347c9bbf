package mailserver

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	imapclient "github.com/emersion/go-imap/client"
	"github.com/emersion/go-smtp"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func send(t *testing.T, addr, from, to, body string) error {
	t.Helper()
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: test\r\nMessage-ID: <" + time.Now().Format("150405.000000000") + "@test>\r\n\r\n" + body + "\r\n"
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail(from, []string{to}, strings.NewReader(msg))
}

func login(t *testing.T, s *Server, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.Dial(s.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout() })
	if err := c.Login(user, pass); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIdleWakesOnSMTPDelivery is the reason the package exists: a real IMAP
// client IDLEing on its INBOX hears of mail delivered over SMTP, and fetches it.
func TestIdleWakesOnSMTPDelivery(t *testing.T) {
	s := start(t, Options{Accounts: map[string]string{"bob@localhost": "pw"}})
	c := login(t, s, "bob@localhost", "pw")
	updates := make(chan imapclient.Update, 16)
	c.Updates = updates
	if _, err := c.Select("INBOX", false); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	idled := make(chan error, 1)
	go func() { idled <- c.Idle(stop, &imapclient.IdleOptions{PollInterval: -1}) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(stop)
		}
	})

	// Delivered until the IDLE hears of it: the first mail may beat the
	// IDLE command to the server, which is fine; the test waits on events.
	deadline := time.After(30 * time.Second)
	sent := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	if err := send(t, s.SMTPAddr(), "alice@example.org", "bob@localhost", "hello bob"); err != nil {
		t.Fatal(err)
	}
	sent++
wait:
	for {
		select {
		case u := <-updates:
			// The update's status is the client's own, shared with its
			// reader: it is only a wake-up.
			if _, ok := u.(*imapclient.MailboxUpdate); ok {
				break wait
			}
		case <-tick.C:
			if sent < 3 {
				if err := send(t, s.SMTPAddr(), "alice@example.org", "bob@localhost", "hello again"); err != nil {
					t.Fatal(err)
				}
				sent++
			}
		case <-deadline:
			t.Fatal("IDLE never heard of the delivered mail")
		}
	}
	close(stop)
	stopped = true
	if err := <-idled; err != nil {
		t.Fatal(err)
	}
	uids, err := c.UidSearch(&imap.SearchCriteria{WithoutFlags: []string{imap.SeenFlag}})
	if err != nil || len(uids) == 0 {
		t.Fatalf("search: %v %v", uids, err)
	}
	set := new(imap.SeqSet)
	set.AddNum(uids[0])
	sec := &imap.BodySectionName{}
	msgs := make(chan *imap.Message, 4)
	if err := c.UidFetch(set, []imap.FetchItem{sec.FetchItem()}, msgs); err != nil {
		t.Fatal(err)
	}
	m := <-msgs
	body, _ := io.ReadAll(m.GetBody(sec))
	if !strings.HasPrefix(string(body), "Return-Path: <alice@example.org>\r\n") || !strings.Contains(string(body), "hello bob") {
		t.Fatalf("body %q", body)
	}
	// \Seen, then \Deleted and EXPUNGE, as the broker does.
	if err := c.UidStore(set, imap.FormatFlagsOp(imap.AddFlags, true), []any{imap.SeenFlag, imap.DeletedFlag}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge(nil); err != nil {
		t.Fatal(err)
	}
	uids, err = c.UidSearch(&imap.SearchCriteria{Uid: set})
	if err != nil || len(uids) != 0 {
		t.Fatalf("after expunge: %v %v", uids, err)
	}
}

func TestRefusals(t *testing.T) {
	s := start(t, Options{Accounts: map[string]string{"bob@localhost": "pw"}, MaxMessageBytes: 4096, MaxMessages: 2})
	var se *smtp.SMTPError
	if err := send(t, s.SMTPAddr(), "a@b", "carol@elsewhere.example", "x"); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("relay: %v", err)
	}
	if err := send(t, s.SMTPAddr(), "a@b", "nobody@localhost", "x"); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("unknown local: %v", err)
	}
	if err := send(t, s.SMTPAddr(), "a@b", "bob@localhost", strings.Repeat(strings.Repeat("x", 70)+"\r\n", 70)); !errors.As(err, &se) || se.Code != 552 {
		t.Errorf("too large: %v", err)
	}
	for i := range 3 {
		err := send(t, s.SMTPAddr(), "a@b", "bob@localhost", "x")
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && (!errors.As(err, &se) || se.Code != 452) {
			t.Errorf("full mailbox: %v", err)
		}
	}
	c, err := imapclient.Dial(s.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Login("bob@localhost", "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestOpenAccounts(t *testing.T) {
	s := start(t, Options{Open: true, Domain: "sb.test", MaxAccounts: 2, Accounts: map[string]string{"switchboard@sb.test": "secret"}})
	if err := send(t, s.SMTPAddr(), "a@b", "Alice@SB.test", "hi"); err != nil {
		t.Fatal(err)
	}
	c := login(t, s, "alice@sb.test", "anything")
	st, err := c.Select("INBOX", true)
	if err != nil || st.Messages != 1 {
		t.Fatalf("select: %+v %v", st, err)
	}
	// A listed account keeps its password; other domains are no one's.
	c2, _ := imapclient.Dial(s.IMAPAddr())
	defer c2.Logout()
	if err := c2.Login("switchboard@sb.test", "guess"); err == nil {
		t.Error("the listed account took a wrong password")
	}
	if err := send(t, s.SMTPAddr(), "a@b", "x@other.test", "hi"); err == nil {
		t.Error("mail for another domain accepted")
	}
	// The open accounts are bounded.
	var se *smtp.SMTPError
	if err := send(t, s.SMTPAddr(), "a@b", "dave@sb.test", "hi"); !errors.As(err, &se) || se.Code != 452 {
		t.Errorf("past MaxAccounts: %v", err)
	}
}
