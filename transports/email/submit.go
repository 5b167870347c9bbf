package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Timings of submission.
const (
	sendRetryMin = time.Second
	sendRetryMax = time.Minute
	dialTimeout  = 10 * time.Second
	// smtpCommandTimeout bounds each SMTP command of a submission.
	smtpCommandTimeout = time.Minute
	// probeEvery is how often an unreachable submission server is tried
	// again for the readiness report while nothing is being sent.
	probeEvery = 30 * time.Second
)

// submitter sends mail through one SMTP submission server. It is safe for
// concurrent use.
type submitter struct {
	addr        string
	host        string
	user, pass  string
	implicitTLS bool
	tls         *tls.Config
	helo        string

	plain   atomic.Bool // the server offers no STARTTLS: plain connections
	mu      sync.Mutex
	lastErr error
}

func newSubmitter(rawURL string, o *Options) (*submitter, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("email: submission_url: %w", err)
	}
	s := &submitter{addr: u.Host, helo: o.domain()}
	s.host, _, _ = net.SplitHostPort(u.Host)
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicitTLS = true
	default:
		return nil, fmt.Errorf("email: submission_url: scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	s.tls = o.tlsConfig(s.host)
	return s, nil
}

// Err is the outcome of the last submission or probe: nil if it worked.
func (s *submitter) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *submitter) note(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// dial connects, with TLS (implicit, or STARTTLS whenever the server offers
// it), and authenticates when a user is configured.
func (s *submitter) dial() (*smtp.Client, error) {
	var c *smtp.Client
	if s.implicitTLS {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: s.tls}
		conn, err := d.Dial("tcp", s.addr)
		if err != nil {
			return nil, err
		}
		c = smtp.NewClient(conn)
	} else {
		conn, err := net.DialTimeout("tcp", s.addr, dialTimeout)
		if err != nil {
			return nil, err
		}
		if s.plain.Load() {
			c = smtp.NewClient(conn)
		} else if c, err = smtp.NewClientStartTLS(conn, s.tls); err != nil {
			if !strings.Contains(err.Error(), "STARTTLS") {
				return nil, err
			}
			// No STARTTLS offered: plain, but never AUTH in the clear
			// beyond loopback.
			if s.user != "" && !loopback(s.addr) {
				return nil, errors.New("the submission server offers no STARTTLS: AUTH in the clear refused (use smtps://)")
			}
			s.plain.Store(true)
			if conn, err = net.DialTimeout("tcp", s.addr, dialTimeout); err != nil {
				return nil, err
			}
			c = smtp.NewClient(conn)
		}
	}
	c.CommandTimeout = smtpCommandTimeout
	c.SubmissionTimeout = smtpCommandTimeout
	if err := c.Hello(s.helo); err != nil && !strings.Contains(err.Error(), "called twice") {
		c.Close()
		return nil, err
	}
	if s.user != "" {
		var a sasl.Client
		switch {
		case c.SupportsAuth(sasl.Plain):
			a = sasl.NewPlainClient("", s.user, s.pass)
		case c.SupportsAuth(sasl.Login):
			a = sasl.NewLoginClient(s.user, s.pass)
		default:
			c.Close()
			return nil, errors.New("the submission server offers neither AUTH PLAIN nor LOGIN")
		}
		if err := c.Auth(a); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// send submits one mail; closing stop cuts it short.
func (s *submitter) send(from, to string, raw []byte, stop <-chan struct{}) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
			c.Close() // a submission server that hangs does not hold up shutdown
		case <-done:
		}
	}()
	if err := c.SendMail(from, []string{to}, bytes.NewReader(raw)); err != nil {
		return err
	}
	_ = c.Quit()
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// permanent reports whether err is an SMTP refusal that trying again cannot
// change (5xx, a bad recipient say).
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code != 530 && se.Code != 535 && se.Code != 554
}

// sendRetrying submits one mail, trying again with backoff (1 s doubling to
// 1 min) until it is sent, ctx ends or stop is closed (errStopped).
func (s *submitter) sendRetrying(ctx context.Context, m *metrics, from, to string, raw []byte, stop <-chan struct{}) error {
	delay := sendRetryMin
	for {
		err := s.send(from, to, raw, stop)
		if stopped := stop != nil && isClosed(stop); stopped && err != nil {
			return errStopped
		}
		if err == nil || !permanent(err) {
			s.note(err)
		}
		if err == nil {
			m.mailOut()
			return nil
		}
		if permanent(err) {
			return err
		}
		m.sendRetry()
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-stop:
			return errStopped
		}
		delay = min(delay*2, sendRetryMax)
	}
}

// probe checks at start, and then every probeEvery while the last attempt
// failed, that the submission server answers, for the readiness report.
func (s *submitter) probe(ctx context.Context, log *slog.Logger) {
	check := func() {
		c, err := s.dial()
		if err == nil {
			_ = c.Quit()
			c.Close()
		} else {
			log.Warn("the submission server does not answer", "addr", s.addr, "error", err)
		}
		s.note(err)
	}
	check()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Err() != nil {
				check()
			}
		}
	}
}
