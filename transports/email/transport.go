package email

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/email/mailserver"
)

// Name is the transport's registered name.
const Name = "email"

// Defaults of the email transport (docs/protocol.md, section 3, Email).
const (
	DefaultAddress      = "switchboard@localhost"
	DefaultBatchDelay   = 250 * time.Millisecond
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultResumeWindow = 10 * time.Minute
	DefaultSMTPListen   = "127.0.0.1:2525"
	DefaultIMAPListen   = "127.0.0.1:1143"

	// Receive modes.
	ReceiveSMTP = "smtp"
	ReceiveIMAP = "imap"
	// What the IMAP receiver does with a handled mail.
	DoneSeen   = "seen"
	DoneDelete = "delete"
)

func init() {
	broker.Register(Name, func(o Options, _ broker.TransportOptions) (broker.Transport, error) {
		return New(o)
	})
}

// Options configures the transport. The zero value of every field means its
// default; the README lists them with their environment variables.
type Options struct {
	// Address is the broker's signaling address: peers mail it, and the
	// broker's mail comes from it. Default: "switchboard@localhost".
	Address string `yaml:"address"`
	// Receive is how mail reaches the broker: "smtp" (it is an SMTP server
	// on SMTPListen) or "imap" (it reads the mailbox at IMAPURL). Default:
	// "imap" when IMAPURL is set or the embedded server runs, else "smtp".
	Receive string `yaml:"receive"`
	// SMTPListen is where the broker's SMTP server listens (receive: smtp).
	// Default: "127.0.0.1:2525".
	SMTPListen string `yaml:"smtp_listen"`
	// SMTPUsername and SMTPPassword, when set, make the broker's SMTP server
	// require AUTH PLAIN with them. Default: no AUTH.
	SMTPUsername string `yaml:"smtp_username"`
	SMTPPassword string `yaml:"smtp_password"`
	// SMTPTLSCert and SMTPTLSKey are PEM files of a certificate and its key:
	// when set, the broker's SMTP server offers STARTTLS, and AUTH is
	// offered beyond loopback only after it. Default: no TLS.
	SMTPTLSCert string `yaml:"smtp_tls_cert"`
	SMTPTLSKey  string `yaml:"smtp_tls_key"`
	// IMAPURL names the mailbox the broker reads (receive: imap):
	// imap://user:password@host:143/INBOX (STARTTLS when offered) or
	// imaps://…:993/INBOX. Default: the broker's mailbox on the embedded server.
	IMAPURL string `yaml:"imap_url"`
	// IMAPDone is what the broker does with a mail it handled: "seen" (flag
	// it \Seen) or "delete" (flag it \Deleted and expunge). Default:
	// "delete" on the embedded server, else "seen".
	IMAPDone string `yaml:"imap_done"`
	// SubmissionURL is where the broker sends mail:
	// smtp://user:password@host:587 (STARTTLS when offered, AUTH when a user
	// is given) or smtps://…:465. Default: the embedded server.
	SubmissionURL string `yaml:"submission_url"`
	// TLSSkipVerify accepts any certificate from the IMAP and submission
	// servers (self-signed test servers). Default: false.
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
	// BatchDelay is how long the broker gathers what it owes a peer before
	// it mails it. Default: 250 ms.
	BatchDelay time.Duration `yaml:"batch_delay"`
	// IdleTimeout ends, with reason timeout, the session of a peer that has
	// mailed nothing for this long. Default: 10 min.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ResumeWindow is how long an email session outlives a lost link (a mail
	// that cannot be sent, a shutdown). Default: 10 min.
	ResumeWindow time.Duration `yaml:"resume_window"`
	// MaxMailBytes is the largest mail read, headers included. Default: 1 MiB.
	MaxMailBytes int `yaml:"max_mail_bytes"`
	// Embedded runs a mail server of the node's own.
	Embedded Embedded `yaml:"embedded"`
}

// Embedded configures the embedded mail server (package mailserver): an SMTP
// server that delivers to in-memory mailboxes and an IMAP server for them.
// The broker's own mailbox is one of them.
type Embedded struct {
	// Enabled runs it. Default: on when SubmissionURL is not set.
	Enabled *bool `yaml:"enabled"`
	// SMTPListen and IMAPListen are where it listens. Defaults:
	// "127.0.0.1:2525" and "127.0.0.1:1143".
	SMTPListen string `yaml:"smtp_listen"`
	IMAPListen string `yaml:"imap_listen"`
	// Domain is its mail domain. Default: the domain of Address.
	Domain string `yaml:"domain"`
	// Accounts are its mailboxes, each "address:password".
	Accounts []string `yaml:"accounts"`
	// OpenAccounts gives every address at Domain a mailbox on first use,
	// whose IMAP login takes any password (loopback demos only). Default:
	// on when Accounts is empty.
	OpenAccounts *bool `yaml:"open_accounts"`
}

// embeddedOn reports whether the embedded server runs.
func (o *Options) embeddedOn() bool {
	if o.Embedded.Enabled != nil {
		return *o.Embedded.Enabled
	}
	return o.SubmissionURL == ""
}

// init applies the defaults and checks the options.
func (o *Options) init() error {
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	o.Address = strings.ToLower(o.Address)
	if at := strings.LastIndexByte(o.Address, '@'); at < 1 || at == len(o.Address)-1 || strings.ContainsAny(o.Address, " <>,") {
		return fmt.Errorf("email: address %q is not a bare mail address", o.Address)
	}
	embedded := o.embeddedOn()
	if o.Receive == "" {
		o.Receive = ReceiveSMTP
		if embedded || o.IMAPURL != "" {
			o.Receive = ReceiveIMAP
		}
	}
	switch o.Receive {
	case ReceiveSMTP, ReceiveIMAP:
	default:
		return fmt.Errorf("email: receive %q: want smtp or imap", o.Receive)
	}
	if o.SMTPListen == "" {
		o.SMTPListen = DefaultSMTPListen
	}
	if o.IMAPDone == "" {
		o.IMAPDone = DoneSeen
		if embedded && o.IMAPURL == "" {
			o.IMAPDone = DoneDelete // the embedded server keeps mail in memory
		}
	}
	if o.IMAPDone != DoneSeen && o.IMAPDone != DoneDelete {
		return fmt.Errorf("email: imap_done %q: want seen or delete", o.IMAPDone)
	}
	if o.BatchDelay <= 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ResumeWindow <= 0 {
		o.ResumeWindow = DefaultResumeWindow
	}
	if o.MaxMailBytes <= 0 {
		o.MaxMailBytes = DefaultMaxMailBytes
	}
	e := &o.Embedded
	if e.SMTPListen == "" {
		e.SMTPListen = DefaultSMTPListen
	}
	if e.IMAPListen == "" {
		e.IMAPListen = DefaultIMAPListen
	}
	if e.Domain == "" {
		e.Domain = o.Address[strings.LastIndexByte(o.Address, '@')+1:]
	}
	for _, a := range e.Accounts {
		if addr, _, ok := strings.Cut(a, ":"); !ok || !strings.Contains(addr, "@") {
			return fmt.Errorf("email: embedded account %q: want address:password", a)
		}
	}
	if !embedded {
		if o.SubmissionURL == "" {
			return errors.New("email: set submission_url, or turn the embedded mail server on")
		}
		if o.Receive == ReceiveIMAP && o.IMAPURL == "" {
			return errors.New("email: receive: imap needs imap_url (or the embedded mail server)")
		}
	} else if o.openAccounts() && !(loopback(e.SMTPListen) && loopback(e.IMAPListen)) {
		return errors.New("email: the embedded mail server's open accounts take any password: listen on loopback only, or list accounts")
	}
	if (o.SMTPTLSCert == "") != (o.SMTPTLSKey == "") {
		return errors.New("email: set smtp_tls_cert and smtp_tls_key together")
	}
	if o.Receive == ReceiveSMTP && embedded && o.SMTPListen == e.SMTPListen && !strings.HasSuffix(o.SMTPListen, ":0") {
		return fmt.Errorf("email: receive: smtp and the embedded mail server both listen on %s", o.SMTPListen)
	}
	for name, u := range map[string]string{"submission_url": o.SubmissionURL, "imap_url": o.IMAPURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return fmt.Errorf("email: %s: want scheme://user:password@host:port", name)
		}
		if _, _, err := net.SplitHostPort(p.Host); err != nil {
			return fmt.Errorf("email: %s: %q has no port", name, p.Host)
		}
	}
	return nil
}

func (o *Options) openAccounts() bool {
	if o.Embedded.OpenAccounts != nil {
		return *o.Embedded.OpenAccounts
	}
	return len(o.Embedded.Accounts) == 0
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (o *Options) domain() string { return o.Address[strings.LastIndexByte(o.Address, '@')+1:] }

func (o *Options) tlsConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, InsecureSkipVerify: o.TLSSkipVerify, MinVersion: tls.VersionTLS12}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Transport serves email peers. Create it with New, then Run it; Ready
// reports whether it can receive and send. It is safe for concurrent use.
type Transport struct {
	opts Options

	b      *broker.Broker
	log    *slog.Logger
	m      *metrics
	maxEnv int
	window int // most envelopes mailed to a peer and not yet acknowledged
	submit *submitter
	srv    *mailserver.Server
	imap   *imapReceiver
	smtpL  net.Listener

	seen   *recent // Message-IDs handled, by sender
	warned *recent // senders told of a bad mail within the hour

	mu        sync.Mutex
	peers     map[string]*peer // by session secret
	running   bool
	stopping  bool
	quit      chan struct{} // closed when Run stops: answers being retried give up
	answering chan struct{} // a slot per answer being mailed (maxAnswersInFlight)
	wg        sync.WaitGroup
}

var (
	_ broker.Transport    = (*Transport)(nil)
	_ broker.ReadyChecker = (*Transport)(nil)
)

// New returns an email transport with opts; it listens and connects only in Run.
func New(opts Options) (*Transport, error) {
	if err := opts.init(); err != nil {
		return nil, err
	}
	return &Transport{
		opts:      opts,
		log:       slog.Default(),
		peers:     make(map[string]*peer),
		quit:      make(chan struct{}),
		answering: make(chan struct{}, maxAnswersInFlight),
		seen:      newRecent(maxRemembered, dedupWindow),
		warned:    newRecent(maxRemembered, errorMailEvery),
		m:         newMetrics(nil),
	}, nil
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Options returns the transport's options, defaults applied.
func (t *Transport) Options() Options { return t.opts }

// MailServer is the embedded mail server while Run runs it, else nil.
func (t *Transport) MailServer() *mailserver.Server {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.srv
}

// SMTPAddr is the address of the broker's own SMTP server (receive: smtp)
// while it runs, else "".
func (t *Transport) SMTPAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.smtpL == nil {
		return ""
	}
	return t.smtpL.Addr().String()
}

// Ready implements broker.ReadyChecker: nil while the transport runs, its
// IMAP receiver (if any) is connected and the submission server answered
// the last time it was tried.
func (t *Transport) Ready() error {
	t.mu.Lock()
	running, im, sub := t.running, t.imap, t.submit
	t.mu.Unlock()
	if !running {
		return errors.New("email: not running")
	}
	if im != nil {
		if err := im.Err(); err != nil {
			return fmt.Errorf("email: imap: %w", err)
		}
	}
	if err := sub.Err(); err != nil {
		return fmt.Errorf("email: submission: %w", err)
	}
	return nil
}

// Run implements broker.Transport: it starts the embedded mail server if
// configured, receives mail (as an SMTP server or an IMAP client) and sends
// what each email peer is owed, until ctx ends. Then it stops receiving,
// stops every peer's sender (the sessions wait out their resume window) and
// stops the embedded server.
func (t *Transport) Run(ctx context.Context, b *broker.Broker) error {
	t.mu.Lock()
	if t.running || t.stopping {
		t.mu.Unlock()
		return errors.New("email: Run called twice")
	}
	t.b = b
	t.log = b.Logger().With("transport", Name)
	t.m = newMetrics(b.Options().Registerer)
	t.maxEnv = b.Options().MaxEnvelope
	t.window = max(1, min(b.Options().MailboxMessages/2, 512))
	t.mu.Unlock()

	o := &t.opts
	submissionURL, imapURL := o.SubmissionURL, o.IMAPURL
	var srv *mailserver.Server
	if o.embeddedOn() {
		accounts := map[string]string{}
		for _, a := range o.Embedded.Accounts {
			addr, pass, _ := strings.Cut(a, ":")
			accounts[strings.ToLower(addr)] = pass
		}
		brokerPass, ok := accounts[o.Address]
		if !ok {
			brokerPass = randomHex(16)
			accounts[o.Address] = brokerPass
		}
		var err error
		srv, err = mailserver.Start(ctx, mailserver.Options{
			SMTPAddr: o.Embedded.SMTPListen, IMAPAddr: o.Embedded.IMAPListen, Domain: o.Embedded.Domain,
			Accounts: accounts, Open: o.openAccounts(), MaxMessageBytes: o.MaxMailBytes, Logger: t.log,
		})
		if err != nil {
			return err
		}
		if submissionURL == "" {
			submissionURL = "smtp://" + srv.SMTPAddr()
		}
		if imapURL == "" {
			imapURL = (&url.URL{Scheme: "imap", User: url.UserPassword(o.Address, brokerPass), Host: srv.IMAPAddr(), Path: "/INBOX"}).String()
		}
		how := "accounts: " + strings.Join(accountNames(accounts), ", ")
		if o.openAccounts() {
			how = "any address @" + o.Embedded.Domain + " with any password"
		}
		t.log.Info("embedded mail server: peers mail "+o.Address+" through SMTP and read their mail over IMAP",
			"smtp", srv.SMTPAddr(), "imap", srv.IMAPAddr(), "mailboxes", how)
	}
	sub, err := newSubmitter(submissionURL, o)
	if err != nil {
		if srv != nil {
			srv.Close()
		}
		return err
	}

	t.mu.Lock()
	t.srv, t.submit = srv, sub
	t.mu.Unlock()

	var stopReceiving func()
	switch o.Receive {
	case ReceiveSMTP:
		stop, err := t.serveSMTP()
		if err != nil {
			if srv != nil {
				srv.Close()
			}
			return err
		}
		stopReceiving = stop
	case ReceiveIMAP:
		r, err := newIMAPReceiver(t, imapURL)
		if err != nil {
			if srv != nil {
				srv.Close()
			}
			return err
		}
		t.mu.Lock()
		t.imap = r
		t.mu.Unlock()
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.run(rctx) }()
		stopReceiving = func() { cancel(); <-done }
	}
	t.mu.Lock()
	t.running = true
	t.mu.Unlock()
	probed := make(chan struct{})
	go func() { defer close(probed); sub.probe(ctx, t.log) }()
	t.log.Info("email transport running", "address", o.Address, "receive", o.Receive, "batch_delay", o.BatchDelay,
		"idle_timeout", o.IdleTimeout, "resume_window", o.ResumeWindow)

	<-ctx.Done()

	stopReceiving()
	close(t.quit)
	t.mu.Lock()
	t.stopping = true
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	t.wg.Wait() // mails being handled
	for _, p := range peers {
		p.stopWriter()
	}
	<-probed
	if srv != nil {
		srv.Close()
	}
	t.mu.Lock()
	t.running = false
	t.mu.Unlock()
	return nil
}

func accountNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	return out
}
