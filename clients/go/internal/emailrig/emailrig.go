// Package emailrig runs a broker with its email transport for the Go
// client's tests: on a real Dovecot and Postfix (package mailtest), the
// broker receiving over IMAP IDLE or as an SMTP server behind Postfix, or on
// the broker's embedded mail server with no other server running. The
// broker also serves WebSocket and long-polling (package testbroker).
package emailrig

import (
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/internal/mailtest"
	"github.com/switchboard-rtc/switchboard/transports/email"
)

// Mode is how the broker's mail travels.
type Mode string

// The modes.
const (
	// IMAP: peers submit to Postfix, which delivers the broker's mail to its
	// Dovecot mailbox; the broker reads it over IMAP IDLE.
	IMAP Mode = "imap"
	// SMTP: Postfix relays the broker's mail to the broker's own SMTP
	// server.
	SMTP Mode = "smtp"
	// Embedded: the broker's embedded mail server holds every mailbox.
	Embedded Mode = "embedded"
)

// Broker is the broker's signaling address in every mode.
const Broker = "switchboard@localhost"

// Rig is a broker with the email transport and its mail servers.
type Rig struct {
	Mode Mode
	// Server is the broker; its URL serves WebSocket and long-polling.
	Server *testbroker.Server
	// Transport is the broker's email transport.
	Transport *email.Transport
	// Mail is the Dovecot and Postfix pair; nil in Embedded mode.
	Mail *mailtest.Server

	imapAddr, smtpAddr string
}

// Options tune a Rig. The zero value is the defaults.
type Options struct {
	// Transports run beside email, WebSocket and long-polling, such as
	// Redis.
	Transports []broker.Transport
	// BatchDelay is the email transport's. Default: the transport's.
	BatchDelay time.Duration
}

// Start runs a broker in mode with a mailbox for each of users (local parts
// of the domain localhost), and stops it when t ends.
func Start(t testing.TB, mode Mode, o Options, users ...string) *Rig {
	t.Helper()
	r := &Rig{Mode: mode}
	eo := email.Options{Address: Broker, BatchDelay: o.BatchDelay}
	off := false
	switch mode {
	case IMAP, SMTP:
		r.Mail = mailtest.Start(t, mailtest.Options{Users: append([]string{"switchboard"}, users...)})
		r.imapAddr, r.smtpAddr = r.Mail.IMAPAddr, r.Mail.SMTPAddr
		eo.Embedded.Enabled = &off
		eo.SubmissionURL = r.Mail.SMTPURL()
		eo.Receive = string(mode)
		if mode == IMAP {
			eo.IMAPURL = r.Mail.IMAPURL("switchboard")
		} else {
			eo.SMTPListen = "127.0.0.1:0"
		}
	case Embedded:
		eo.Embedded.SMTPListen = "127.0.0.1:0"
		eo.Embedded.IMAPListen = "127.0.0.1:0"
		for _, u := range users {
			eo.Embedded.Accounts = append(eo.Embedded.Accounts, u+"@localhost:"+mailtest.Password)
		}
	default:
		t.Fatalf("emailrig: unknown mode %q", mode)
	}
	tr, err := email.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	r.Transport = tr
	srv, err := testbroker.Start(testbroker.Options{Transports: append([]broker.Transport{tr}, o.Transports...)})
	if err != nil {
		t.Fatal(err)
	}
	r.Server = srv
	t.Cleanup(srv.Close)
	deadline := time.Now().Add(60 * time.Second)
	for tr.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("emailrig: the email transport is not ready: %v", tr.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	switch mode {
	case SMTP:
		r.Mail.Route(Broker, tr.SMTPAddr())
	case Embedded:
		ms := tr.MailServer()
		r.imapAddr, r.smtpAddr = ms.IMAPAddr(), ms.SMTPAddr()
	}
	return r
}

// Address returns the address of user's mailbox.
func (r *Rig) Address(user string) string { return user + "@localhost" }

// PeerURL returns the URL that an email peer with user's mailbox dials:
// its IMAP mailbox, with the submission server and the broker's address in
// the query.
func (r *Rig) PeerURL(user string) string {
	q := url.Values{}
	q.Set("smtp", r.SMTPURL())
	q.Set("broker", Broker)
	return r.IMAPURL(user) + "?" + q.Encode()
}

// IMAPURL returns the URL of user's mailbox.
func (r *Rig) IMAPURL(user string) string {
	u := url.URL{Scheme: "imap", User: url.UserPassword(r.Address(user), mailtest.Password), Host: r.imapAddr, Path: "/INBOX"}
	return u.String()
}

// SMTPURL returns the URL of the peers' submission server.
func (r *Rig) SMTPURL() string { return "smtp://" + r.smtpAddr }

// IMAPAddr and SMTPAddr are the peers' IMAP and submission servers.
func (r *Rig) IMAPAddr() string { return r.imapAddr }
func (r *Rig) SMTPAddr() string { return r.smtpAddr }
