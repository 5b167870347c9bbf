package email

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-rtc/switchboard/broker"
)

// rig is a broker with the email transport and its embedded mail server.
type rig struct {
	b    *broker.Broker
	tr   *Transport
	smtp string // where peers submit mail
	done chan error
	stop context.CancelFunc
}

func newRig(t *testing.T, o Options, bo broker.Options) *rig {
	t.Helper()
	if o.Embedded.SMTPListen == "" {
		o.Embedded.SMTPListen = "127.0.0.1:0"
	}
	if o.Embedded.IMAPListen == "" {
		o.Embedded.IMAPListen = "127.0.0.1:0"
	}
	if o.BatchDelay == 0 {
		o.BatchDelay = 20 * time.Millisecond
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(bo)
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
	r.smtp = tr.MailServer().SMTPAddr()
	if o.Receive == ReceiveSMTP {
		r.smtp = tr.SMTPAddr()
	}
	return r
}

// waitFor waits, generously, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var mailCounter atomic.Int64

// peerMail is a mail as a peer writes it.
func peerMail(from, to, session string, envs ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: switchboard\r\nMessage-ID: <%d.%d@peer.test>\r\n", from, to, time.Now().UnixNano(), mailCounter.Add(1))
	if session != "" {
		fmt.Fprintf(&b, "%s: %s\r\n", HeaderSession, session)
	}
	body := envs[0]
	if len(envs) > 1 {
		body = "[" + strings.Join(envs, ",") + "]"
	}
	if len(body) < 900 {
		b.WriteString("Content-Type: application/json\r\n\r\n" + body + "\r\n")
		return []byte(b.String())
	}
	// Long lines do not travel by SMTP: base64, 76 to a line.
	b.WriteString("Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(body))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return []byte(b.String())
}

func submit(t *testing.T, addr, from string, raw []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.SendMail(from, []string{DefaultAddress}, bytes.NewReader(raw))
}

// brokerMail is a mail from the broker, as a test reads it.
type brokerMail struct {
	h    mail.Header
	envs []map[string]any
}

func readBrokerMail(t *testing.T, raw []byte) brokerMail {
	t.Helper()
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	body, err := findEnvelopes(ent)
	if err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	var envs []map[string]any
	if err := json.Unmarshal(body, &envs); err != nil {
		t.Fatalf("broker mail JSON %s: %v", body, err)
	}
	return brokerMail{h: mail.Header{Header: ent.Header}, envs: envs}
}

// inbox reads the mail the broker sends one address, in order.
type inbox struct {
	r    *rig
	addr string
	n    int
	got  []map[string]any // envelopes not yet taken
	mail []brokerMail
}

// next returns the next envelope the broker mailed to the inbox's address.
func (in *inbox) next(t *testing.T) map[string]any {
	t.Helper()
	for len(in.got) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		msgs, err := in.r.tr.MailServer().WaitMessages(ctx, in.addr, in.n)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range msgs[in.n:] {
			m := readBrokerMail(t, raw)
			in.mail = append(in.mail, m)
			in.got = append(in.got, m.envs...)
		}
		in.n = len(msgs)
	}
	e := in.got[0]
	in.got = in.got[1:]
	return e
}

func (in *inbox) nextOfType(t *testing.T, typ string) map[string]any {
	t.Helper()
	for {
		e := in.next(t)
		if e["type"] == typ {
			return e
		}
	}
}

// inproc reads what an in-process session receives, in order.
type inproc struct {
	s     *broker.Session
	after uint64
	queue []map[string]any
}

// receiveType reads envelopes of an in-process session until one of typ.
func receiveType(t *testing.T, p *inproc, typ string) map[string]any {
	t.Helper()
	for {
		for len(p.queue) > 0 {
			e := p.queue[0]
			p.queue = p.queue[1:]
			if e["type"] == typ {
				return e
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		frames, last, err := p.s.Receive(ctx, p.after)
		cancel()
		if err != nil || len(frames) == 0 {
			t.Fatalf("receiving %s: %v", typ, err)
		}
		p.after = max(p.after, last)
		for _, f := range frames {
			var e map[string]any
			if err := json.Unmarshal(f, &e); err != nil {
				t.Fatal(err)
			}
			p.queue = append(p.queue, e)
		}
	}
}

const alice = "alice@localhost"

func TestCallSetupOverEmail(t *testing.T) {
	for _, receive := range []string{ReceiveIMAP, ReceiveSMTP} {
		t.Run(receive, func(t *testing.T) {
			o := Options{Receive: receive}
			if receive == ReceiveSMTP {
				o.SMTPListen = "127.0.0.1:0"
			}
			r := newRig(t, o, broker.Options{})
			in := &inbox{r: r, addr: alice}

			if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"demo","payload":{"peer":"alice"}}`)); err != nil {
				t.Fatal(err)
			}
			welcome := in.nextOfType(t, "welcome")
			session := welcome["payload"].(map[string]any)["session"].(string)
			first := in.mail[0]
			if first.h.Get("Auto-Submitted") != "auto-generated" || first.h.Get(HeaderRoom) != "demo" {
				t.Fatalf("welcome mail header %v", first.h)
			}
			firstID, _ := first.h.MessageID()

			// Bob is in-process; his offer reaches alice by mail, threaded.
			bob, err := r.b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "bob", Transport: "test"})
			if err != nil {
				t.Fatal(err)
			}
			bobIn := &inproc{s: bob.Session, after: 1}
			offer := `{"type":"offer","to":"alice","id":"o1","payload":{"type":"offer","sdp":"v=0\r\n"}}`
			if err := bob.Session.HandleRaw(context.Background(), []byte(offer)); err != nil {
				t.Fatal(err)
			}
			got := in.nextOfType(t, "offer")
			if got["from"] != "bob" || got["payload"].(map[string]any)["sdp"] != "v=0\r\n" {
				t.Fatalf("offer %v", got)
			}
			last := in.mail[len(in.mail)-1]
			if refs, _ := last.h.MsgIDList("In-Reply-To"); len(refs) != 1 || refs[0] != firstID {
				t.Fatalf("In-Reply-To %v, want %s", refs, firstID)
			}
			if ct, _, _ := last.h.ContentType(); ct != "multipart/mixed" {
				t.Fatalf("an offer's mail is %s", ct)
			}

			// Alice answers, with an ack, in one mail with the session header.
			seq := got["seq"].(float64)
			answer := `{"type":"answer","to":"bob","payload":{"type":"answer","sdp":"v=0\r\n"}}`
			ack := fmt.Sprintf(`{"type":"ack","payload":{"seq":%d}}`, int(seq))
			if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, answer, ack)); err != nil {
				t.Fatal(err)
			}
			a := receiveType(t, bobIn, "answer")
			if a["from"] != "alice" {
				t.Fatalf("answer %v", a)
			}

			// Mail from another address with alice's session is refused.
			if err := submit(t, r.smtp, "mallory@localhost", peerMail("mallory@localhost", DefaultAddress, session, `{"type":"bye","to":"bob"}`)); err != nil {
				t.Fatal(err)
			}
			mal := &inbox{r: r, addr: "mallory@localhost"}
			if e := mal.nextOfType(t, "error"); e["payload"].(map[string]any)["code"] != "unauthorized" {
				t.Fatalf("mallory got %v", e)
			}

			// Alice leaves; bob hears it.
			if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, `{"type":"leave"}`)); err != nil {
				t.Fatal(err)
			}
			left := receiveType(t, bobIn, "peer-left")
			if left["payload"].(map[string]any)["peer"] != "alice" {
				t.Fatalf("peer-left %v", left)
			}
		})
	}
}
