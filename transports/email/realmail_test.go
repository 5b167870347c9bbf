package email

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	imapclient "github.com/emersion/go-imap/client"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/mailtest"
)

// imapInbox reads one mailbox on a real IMAP server, waking on IDLE.
type imapInbox struct {
	t     *testing.T
	c     *imapclient.Client
	wake  chan struct{}
	seen  map[uint32]bool
	queue []map[string]any
}

func openInbox(t *testing.T, rawURL string) *imapInbox {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.Dial(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	if err := c.Login(u.User.Username(), pass); err != nil {
		t.Fatal(err)
	}
	in := &imapInbox{t: t, c: c, wake: make(chan struct{}, 1), seen: map[uint32]bool{}}
	updates := make(chan imapclient.Update, 64)
	c.Updates = updates
	go func() {
		for {
			select {
			case <-updates:
				select {
				case in.wake <- struct{}{}:
				default:
				}
			case <-c.LoggedOut():
				return
			}
		}
	}()
	if _, err := c.Select("INBOX", false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Terminate() })
	return in
}

// next returns the next envelope mailed to the inbox.
func (in *imapInbox) next() map[string]any {
	in.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(in.queue) == 0 {
		uids, err := in.c.UidSearch(imap.NewSearchCriteria())
		if err != nil {
			in.t.Fatal(err)
		}
		set := new(imap.SeqSet)
		for _, u := range uids {
			if !in.seen[u] {
				set.AddNum(u)
			}
		}
		if !set.Empty() {
			sec := &imap.BodySectionName{Peek: true}
			msgs := make(chan *imap.Message, 16)
			done := make(chan error, 1)
			go func() { done <- in.c.UidFetch(set, []imap.FetchItem{imap.FetchUid, sec.FetchItem()}, msgs) }()
			for m := range msgs {
				in.seen[m.Uid] = true
				raw, _ := io.ReadAll(m.GetBody(sec))
				envs, err := brokerEnvelopes(raw)
				if err != nil {
					in.t.Fatalf("mail from the broker: %v\n%s", err, raw)
				}
				for _, e := range envs {
					var v map[string]any
					_ = json.Unmarshal(e, &v)
					in.queue = append(in.queue, v)
				}
			}
			if err := <-done; err != nil {
				in.t.Fatal(err)
			}
			continue
		}
		if time.Now().After(deadline) {
			in.t.Fatal("no mail from the broker within 60 s")
		}
		stop := make(chan struct{})
		idled := make(chan error, 1)
		go func() { idled <- in.c.Idle(stop, &imapclient.IdleOptions{PollInterval: -1}) }()
		select {
		case <-in.wake:
		case <-time.After(time.Until(deadline)):
		}
		close(stop)
		<-idled
	}
	e := in.queue[0]
	in.queue = in.queue[1:]
	return e
}

func (in *imapInbox) nextOfType(typ string) map[string]any {
	in.t.Helper()
	for {
		if e := in.next(); e["type"] == typ {
			return e
		}
	}
}

// TestRealMailServer runs the transport against Dovecot and Postfix: the
// broker reads its mailbox on Dovecot over IMAP IDLE and sends through
// Postfix, and it reconnects when Dovecot restarts.
func TestRealMailServer(t *testing.T) {
	ms := mailtest.Start(t, mailtest.Options{Users: []string{"switchboard", "alice"}})
	r := newRealRig(t, ms, DoneSeen)
	in := openInbox(t, ms.IMAPURL("alice"))
	alice := ms.Address("alice")

	if err := submit(t, ms.SMTPAddr, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"demo","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	welcome := in.nextOfType("welcome")
	session := welcome["payload"].(map[string]any)["session"].(string)

	bob, err := r.b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	bobIn := &inproc{s: bob.Session, after: 1}
	if err := bob.Session.HandleRaw(context.Background(), []byte(`{"type":"offer","to":"alice","payload":{"type":"offer","sdp":"v=0\r\n"}}`)); err != nil {
		t.Fatal(err)
	}
	if o := in.nextOfType("offer"); o["from"] != "bob" {
		t.Fatalf("offer %v", o)
	}
	if err := submit(t, ms.SMTPAddr, alice, peerMail(alice, DefaultAddress, session, `{"type":"answer","to":"bob","payload":{"type":"answer","sdp":"v=0\r\n"}}`)); err != nil {
		t.Fatal(err)
	}
	receiveType(t, bobIn, "answer")

	// Dovecot restarts: the broker connects again on its own, and mail that
	// arrived meanwhile is handled once.
	ms.RestartDovecot()
	waitFor(t, "the IMAP receiver to reconnect", func() bool {
		return testutilReconnects(r.tr) > 0 && r.tr.Ready() == nil
	})
	for i := range 3 {
		msg := fmt.Sprintf(`{"type":"message","to":"bob","id":"after-restart-%d","payload":%d}`, i, i)
		if err := submit(t, ms.SMTPAddr, alice, peerMail(alice, DefaultAddress, session, msg)); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix may deliver separate mails in any order: each arrives once.
	got := map[float64]bool{}
	for range 3 {
		got[receiveType(t, bobIn, "message")["payload"].(float64)] = true
	}
	if len(got) != 3 {
		t.Fatalf("after the restart: %v", got)
	}
}

// testutilReconnects reads the transport's IMAP reconnect counter.
func testutilReconnects(tr *Transport) float64 {
	return testutil.ToFloat64(tr.m.reconnects)
}

// newRealRig runs the transport on a mailtest server's mailbox of switchboard.
func newRealRig(t *testing.T, ms *mailtest.Server, done string) *rig {
	t.Helper()
	off := false
	tr, err := New(Options{
		Address: ms.Address("switchboard"), IMAPURL: ms.IMAPURL("switchboard"), SubmissionURL: ms.SMTPURL(),
		IMAPDone: done, BatchDelay: 50 * time.Millisecond, Embedded: Embedded{Enabled: &off},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{b: b, tr: tr, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- tr.Run(ctx, b) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("the transport did not stop")
		}
		b.Close(broker.ReasonTimeout)
	})
	waitFor(t, "the transport to be ready", func() bool { return tr.Ready() == nil })
	return r
}

// TestRealMailServerDelete: with imap_done: delete the broker's mailbox on
// Dovecot is empty once its mail is handled.
func TestRealMailServerDelete(t *testing.T) {
	ms := mailtest.Start(t, mailtest.Options{Users: []string{"switchboard", "alice"}})
	newRealRig(t, ms, DoneDelete)
	in := openInbox(t, ms.IMAPURL("alice"))
	alice := ms.Address("alice")
	if err := submit(t, ms.SMTPAddr, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"demo","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	session := in.nextOfType("welcome")["payload"].(map[string]any)["session"].(string)
	if err := submit(t, ms.SMTPAddr, alice, peerMail(alice, DefaultAddress, session, `{"type":"ping","payload":"p"}`)); err != nil {
		t.Fatal(err)
	}
	in.nextOfType("pong")
	box := openInbox(t, ms.IMAPURL("switchboard"))
	waitFor(t, "the broker's mailbox to be empty", func() bool {
		uids, err := box.c.UidSearch(imap.NewSearchCriteria())
		return err == nil && len(uids) == 0
	})
}
