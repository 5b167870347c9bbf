// Package mailserver is a small mail system in memory: an SMTP server that
// delivers to mailboxes of its own, and an IMAP server (RFC 3501, with IDLE,
// RFC 2177) for those mailboxes. It makes the email transport work with
// nothing else installed, and gives tests a real SMTP and IMAP server to
// talk to. It is no mail relay: it takes mail only for its own accounts.
package mailserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	imapserver "github.com/emersion/go-imap/server"
	"github.com/emersion/go-smtp"
)

// Defaults and limits of the mail server.
const (
	DefaultDomain          = "localhost"
	DefaultMaxMessageBytes = 1 << 20 // the largest mail the SMTP server takes
	DefaultMaxMessages     = 1000    // messages one mailbox holds
	DefaultMaxAccounts     = 1000    // accounts that open accounts may make
	// smtpTimeout is the SMTP server's read and write timeout.
	smtpTimeout = 60 * time.Second
	// maxRecipients bounds the recipients of one mail.
	maxRecipients = 50
)

// Options configures a Server. The zero value of every field means its default.
type Options struct {
	// SMTPAddr and IMAPAddr are where the servers listen. Default:
	// "127.0.0.1:0" (a free loopback port; see Server.SMTPAddr).
	SMTPAddr, IMAPAddr string
	// Domain is the mail domain of the open accounts and the SMTP
	// greeting's name. Default: "localhost".
	Domain string
	// Accounts maps each address that has a mailbox to its IMAP password.
	Accounts map[string]string
	// Open gives every address at Domain a mailbox, made on first use, whose
	// IMAP login takes any password: for loopback demos only. At most
	// MaxAccounts are made. Default: off.
	Open bool
	// MaxMessageBytes is the largest mail the SMTP server takes. Default: 1 MiB.
	MaxMessageBytes int
	// MaxMessages is how many messages one mailbox holds; mail to a full
	// one is refused (452). Default: 1000.
	MaxMessages int
	// MaxAccounts bounds the accounts Open makes. Default: 1000.
	MaxAccounts int
	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Server is a running mail server. It is safe for concurrent use; end it
// with Close (or by ending the context given to Start).
type Server struct {
	opts  Options
	store *store
	smtp  *smtp.Server
	imap  *imapserver.Server
	smtpL net.Listener
	imapL *trackingListener
	log   *slog.Logger

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start starts the SMTP and IMAP servers on their addresses and returns at
// once; they serve until ctx ends or Close is called.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.SMTPAddr == "" {
		o.SMTPAddr = "127.0.0.1:0"
	}
	if o.IMAPAddr == "" {
		o.IMAPAddr = "127.0.0.1:0"
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxMessages <= 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = DefaultMaxAccounts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{opts: o, log: o.Logger.With("component", "mailserver")}
	s.store = newStore(o.Domain, o.Open, o.MaxAccounts, o.MaxMessages)
	for addr, pass := range o.Accounts {
		s.store.addAccount(addr, pass)
	}
	var err error
	if s.smtpL, err = net.Listen("tcp", o.SMTPAddr); err != nil {
		return nil, fmt.Errorf("mailserver: smtp: %w", err)
	}
	imapL, err := net.Listen("tcp", o.IMAPAddr)
	if err != nil {
		s.smtpL.Close()
		return nil, fmt.Errorf("mailserver: imap: %w", err)
	}
	s.imapL = &trackingListener{Listener: imapL, conns: map[net.Conn]struct{}{}}
	errLog := log.New(&logWriter{s.log}, "", 0)

	s.smtp = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s}, nil
	}))
	s.smtp.Domain = o.Domain
	s.smtp.MaxMessageBytes = int64(o.MaxMessageBytes)
	s.smtp.MaxRecipients = maxRecipients
	s.smtp.ReadTimeout = smtpTimeout
	s.smtp.WriteTimeout = smtpTimeout
	s.smtp.ErrorLog = errLog

	s.imap = imapserver.New(s.store)
	s.imap.AllowInsecureAuth = true // loopback, and no TLS to offer
	s.imap.MaxLiteralSize = uint32(o.MaxMessageBytes)
	s.imap.ErrorLog = errLog
	s.imap.Enable(storeExtension{})

	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.store.dispatch() }()
	go func() { defer s.wg.Done(); _ = s.smtp.Serve(s.smtpL) }()
	go func() { defer s.wg.Done(); _ = s.imap.Serve(s.imapL) }()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.store.closed:
		}
	}()
	s.log.Info("embedded mail server listening", "smtp", s.SMTPAddr(), "imap", s.IMAPAddr(), "domain", o.Domain, "open_accounts", o.Open)
	return s, nil
}

// SMTPAddr is the address the SMTP server listens on.
func (s *Server) SMTPAddr() string { return s.smtpL.Addr().String() }

// IMAPAddr is the address the IMAP server listens on.
func (s *Server) IMAPAddr() string { return s.imapL.Addr().String() }

// AddAccount makes the account of address with password, or sets its password.
func (s *Server) AddAccount(address, password string) { s.store.addAccount(address, password) }

// Deliver puts raw into the INBOX of each of to, as the SMTP server does.
func (s *Server) Deliver(from string, to []string, raw []byte) error {
	for _, rcpt := range to {
		if err := s.store.deliver(rcpt, withReturnPath(from, raw)); err != nil {
			return fmt.Errorf("%s: %w", rcpt, err)
		}
	}
	return nil
}

// Messages returns the mail in the INBOX of address, oldest first (as
// delivered, with Return-Path), for tests to look at directly.
func (s *Server) Messages(address string) [][]byte {
	m, _ := s.store.messages(address)
	return m
}

// WaitMessages waits until the INBOX of address holds more than n mails,
// then returns them all, oldest first; it fails when ctx ends first.
func (s *Server) WaitMessages(ctx context.Context, address string, n int) ([][]byte, error) {
	for {
		m, changed := s.store.messages(address)
		if len(m) > n {
			return m, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return m, fmt.Errorf("mailserver: waiting for mail %d to %s: %w", n+1, address, ctx.Err())
		}
	}
}

// DropIMAPConnections cuts every IMAP connection, as a server restart
// would; clients must connect again.
func (s *Server) DropIMAPConnections() { s.imapL.dropAll() }

// RenewUIDValidity gives every mailbox a new UIDVALIDITY and numbers its
// mail again from UID 1, as a server does when it rebuilds its index.
// Clients that have a mailbox selected should be cut (DropIMAPConnections).
func (s *Server) RenewUIDValidity() {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.uidValidity++
	for _, u := range st.accounts {
		for _, b := range u.boxes {
			b.uidNext = 1
			for _, m := range b.msgs {
				m.Uid = b.uidNext
				b.uidNext++
			}
		}
	}
}

// trackingListener remembers its connections, so that they can be cut.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) dropAll() {
	l.mu.Lock()
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Close stops both servers, closes their connections and waits for their
// goroutines. Closing twice is harmless.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.store.closed)
		_ = s.smtp.Close()
		_ = s.imap.Close()
		s.wg.Wait()
	})
	return nil
}

// withReturnPath puts the envelope sender in front of raw, as a final
// delivery does (RFC 5321 section 4.4).
func withReturnPath(from string, raw []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(raw) + len(from) + 16)
	b.WriteString("Return-Path: <")
	b.WriteString(from)
	b.WriteString(">\r\n")
	b.Write(raw)
	return b.Bytes()
}

// smtpSession is one SMTP transaction at a time on one connection.
type smtpSession struct {
	s    *Server
	from string
	to   []string
}

func (ss *smtpSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *smtpSession) Logout() error { return nil }

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch err := ss.s.store.hasMailbox(to); {
	case errors.Is(err, ErrMailboxFull):
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
	case err != nil:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox here; this server relays nothing"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp answers 552 for a mail over the size limit
	}
	raw = bytes.Clone(raw)
	for _, rcpt := range ss.to {
		if err := ss.s.store.deliver(rcpt, withReturnPath(ss.from, raw)); err != nil {
			ss.s.log.Warn("delivery failed", "to", rcpt, "error", err)
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
		}
	}
	return nil
}

// logWriter turns the servers' log lines into slog records.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
