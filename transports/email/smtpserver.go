package email

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpTimeout is the broker's SMTP server's read and write timeout.
const smtpTimeout = 60 * time.Second

// serveSMTP starts the broker's SMTP server on SMTPListen; the function it
// returns stops it and waits for its connections.
func (t *Transport) serveSMTP() (func(), error) {
	ln, err := net.Listen("tcp", t.opts.SMTPListen)
	if err != nil {
		return nil, err
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{t: t}, nil
	}))
	s.Domain = t.opts.domain()
	s.MaxMessageBytes = int64(t.opts.MaxMailBytes)
	s.MaxRecipients = 1
	s.ReadTimeout = smtpTimeout
	s.WriteTimeout = smtpTimeout
	s.AllowInsecureAuth = loopback(ln.Addr().String())
	if t.opts.SMTPTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(t.opts.SMTPTLSCert, t.opts.SMTPTLSKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("email: smtp_tls_cert: %w", err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.ErrorLog = log.New(io.Discard, "", 0)
	t.mu.Lock()
	t.smtpL = ln
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.log.Info("email: SMTP server listening", "addr", ln.Addr().String(), "auth", t.opts.SMTPUsername != "", "starttls", s.TLSConfig != nil)
	return func() { _ = s.Close(); <-done }, nil
}

// smtpSession is one transaction at a time on one SMTP connection.
type smtpSession struct {
	t          *Transport
	authed     bool
	nullSender bool
	rcpt       bool
}

var (
	_ smtp.Session     = (*smtpSession)(nil)
	_ smtp.AuthSession = (*smtpSession)(nil)
)

func (s *smtpSession) Reset()        { s.nullSender, s.rcpt = false, false }
func (s *smtpSession) Logout() error { return nil }

func (s *smtpSession) AuthMechanisms() []string {
	if s.t.opts.SMTPUsername == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if s.t.opts.SMTPUsername == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if (identity != "" && identity != user) || user != s.t.opts.SMTPUsername || pass != s.t.opts.SMTPPassword {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.t.opts.SMTPUsername != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.nullSender = from == ""
	return nil
}

// errNotHere refuses a recipient other than the broker's address.
var errNotHere = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "This server takes mail for the signaling address only"}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !strings.EqualFold(strings.TrimSpace(to), s.t.opts.Address) {
		return errNotHere
	}
	s.rcpt = true
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.t.m.parseFailed("too-large")
		}
		return err
	}
	if !s.rcpt {
		return errNotHere
	}
	s.t.handleMail(raw, s.nullSender)
	return nil
}
