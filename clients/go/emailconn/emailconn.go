package emailconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/keepalive"
)

// Name is the name the transport is registered under (Options.Transport).
const Name = "email"

// DefaultBroker is the broker's signaling address when neither the URL nor
// the Config names one: the broker's default.
const DefaultBroker = "switchboard@localhost"

// Defaults of Config.
const (
	// DefaultKeepAlive is how long a connection may mail nothing before it
	// mails a ping. The broker ends an email session silent for its idle
	// timeout (10 minutes by default).
	DefaultKeepAlive = 4 * time.Minute
	// DefaultAckDelay is how long an acknowledgement waits for a mail to
	// ride along with before it is mailed on its own.
	DefaultAckDelay = 30 * time.Second
)

// Timings of a connection.
const (
	// imapTimeout bounds every IMAP command; an IDLE is renewed at half of
	// it, so that a dead connection is noticed within it.
	imapTimeout = 60 * time.Second
	// silenceSlack is added to twice the keepalive interval to make the
	// longest the broker may stay silent before the connection counts as
	// broken.
	silenceSlack = 2 * time.Minute
)

// pingMarker marks the connection's own keepalive pings, whose pongs Recv
// does not return.
const pingMarker = keepalive.Marker("switchboard_email_keepalive")

func init() { switchboard.RegisterTransport(Name, NewDialFunc(Config{})) }

// Config configures an email transport beyond what its URL says. The zero
// value of every field means its default.
type Config struct {
	// SMTP is the URL of the submission server, for URLs without ?smtp=.
	// Default: none; one of the two is required.
	SMTP string
	// Broker is the broker's signaling address, for URLs without
	// ?broker=. Default: DefaultBroker.
	Broker string
	// From is the peer's own address, for URLs without ?from=. Default:
	// the IMAP user name, when it is an address.
	From string
	// KeepAlive is how long a connection may mail nothing before it mails a
	// ping; it must be well under the broker's idle timeout for email.
	// Default: DefaultKeepAlive.
	KeepAlive time.Duration
	// AckDelay is how long an acknowledgement waits for a mail to go with
	// before it is mailed alone. Default: DefaultAckDelay.
	AckDelay time.Duration
}

// NewDialFunc returns a dialer of the email transport with cfg, for
// switchboard.RegisterTransport. The transport registered as "email" is
// NewDialFunc(Config{}).
func NewDialFunc(cfg Config) switchboard.DialFunc {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.AckDelay <= 0 {
		cfg.AckDelay = DefaultAckDelay
	}
	return func(ctx context.Context, base *url.URL, join switchboard.Envelope, opts *switchboard.Options) (switchboard.Conn, switchboard.Envelope, error) {
		return dial(ctx, cfg, base, join, opts)
	}
}

// errClosed is what a closed connection's methods fail with.
var errClosed = errors.New("connection closed")

// settings is what a connection needs to know, from the URL and Config.
type settings struct {
	imapAddr, imapUser, imapPass, mailbox string
	imapTLS                               bool
	smtp                                  *url.URL
	from, broker                          string
}

// parseSettings reads the URL given to Dial, with cfg for what it lacks.
func parseSettings(base *url.URL, cfg Config) (*settings, error) {
	s := &settings{mailbox: "INBOX"}
	switch base.Scheme {
	case "imap":
	case "imaps":
		s.imapTLS = true
	default:
		return nil, fmt.Errorf("emailconn: unsupported URL scheme %q: want imap or imaps", base.Scheme)
	}
	s.imapAddr = base.Host
	if base.Port() == "" {
		port := "143"
		if s.imapTLS {
			port = "993"
		}
		s.imapAddr = net.JoinHostPort(base.Hostname(), port)
	}
	if base.User != nil {
		s.imapUser = base.User.Username()
		s.imapPass, _ = base.User.Password()
	}
	if p := strings.Trim(base.Path, "/"); p != "" {
		s.mailbox = p
	}
	q := base.Query()
	smtpURL := cfg.SMTP
	if q.Has("smtp") {
		smtpURL = q.Get("smtp")
	}
	if smtpURL == "" {
		return nil, errors.New("emailconn: no submission server: give ?smtp=smtp://host:port in the URL")
	}
	u, err := url.Parse(smtpURL)
	if err != nil {
		return nil, fmt.Errorf("emailconn: submission server URL: %w", err)
	}
	switch u.Scheme {
	case "smtp", "smtps":
	default:
		return nil, fmt.Errorf("emailconn: unsupported submission URL scheme %q: want smtp or smtps", u.Scheme)
	}
	s.smtp = u
	s.broker = cfg.Broker
	if q.Has("broker") {
		s.broker = q.Get("broker")
	}
	if s.broker == "" {
		s.broker = DefaultBroker
	}
	s.from = cfg.From
	if q.Has("from") {
		s.from = q.Get("from")
	}
	if s.from == "" && strings.Contains(s.imapUser, "@") {
		s.from = s.imapUser
	}
	if !strings.Contains(s.from, "@") || !strings.Contains(s.broker, "@") {
		return nil, fmt.Errorf("emailconn: the peer's address (%q) and the broker's (%q) must both be addresses", s.from, s.broker)
	}
	s.from, s.broker = strings.ToLower(s.from), strings.ToLower(s.broker)
	return s, nil
}

// conn is a switchboard.Conn over mail: it submits mail to the broker over
// SMTP and reads the broker's mail from its own mailbox, woken by IMAP IDLE.
type conn struct {
	opts      *switchboard.Options
	cfg       Config
	set       *settings
	ic        *client.Client
	updates   chan client.Update
	keepAlive time.Duration
	silence   time.Duration // the longest the broker may stay silent

	// Set during dial, read-only afterwards.
	session string
	joinID  string

	sendMu    sync.Mutex // one submission at a time
	ackMu     sync.Mutex
	ackSeq    uint64 // an acknowledgement not yet mailed; 0: none
	ackDue    time.Time
	ackMailed uint64        // the last seq acknowledged in a mail
	ackWake   chan struct{} // tells the keepalive loop an ack is due now
	lastUID   uint32        // owned by the reader

	startTLS atomic.Int32 // startTLSUnknown, startTLSYes or startTLSNo

	mu      sync.Mutex
	queue   []switchboard.Envelope
	readErr error // why the reader ended
	wake    chan struct{}

	lastSent  atomic.Int64 // unix nanoseconds of the last mail submitted
	lastHeard atomic.Int64 // unix nanoseconds of the last mail from the broker

	closed     chan struct{}
	closeOnce  sync.Once
	readerDone chan struct{}
	aliveDone  chan struct{} // closed when the keepalive goroutine has ended; nil if none
}

var (
	_ switchboard.Conn           = (*conn)(nil)
	_ switchboard.ConfirmingConn = (*conn)(nil)
)

// ConfirmsSends marks the conn as confirming: a mail the submission server
// took is the mail system's to deliver, and a repeat would only be dropped.
func (c *conn) ConfirmsSends() {}

// dial logs in to the mailbox, mails the join and waits for the welcome.
func dial(ctx context.Context, cfg Config, base *url.URL, join switchboard.Envelope, opts *switchboard.Options) (switchboard.Conn, switchboard.Envelope, error) {
	set, err := parseSettings(base, cfg)
	if err != nil {
		return nil, switchboard.Envelope{}, err
	}
	c := &conn{
		opts:       opts,
		cfg:        cfg,
		set:        set,
		keepAlive:  cfg.KeepAlive,
		silence:    2*cfg.KeepAlive + silenceSlack,
		updates:    make(chan client.Update, 16),
		wake:       make(chan struct{}, 1),
		ackWake:    make(chan struct{}, 1),
		closed:     make(chan struct{}),
		readerDone: make(chan struct{}),
		joinID:     join.ID,
	}
	if err := c.openMailbox(ctx); err != nil {
		close(c.readerDone)
		return nil, switchboard.Envelope{}, err
	}
	go c.read()
	welcome, err := c.join(ctx, join)
	if err != nil {
		c.Close(false)
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			var pe *switchboard.Error
			if !errors.As(err, &pe) {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
		}
		return nil, switchboard.Envelope{}, err
	}
	now := time.Now().UnixNano()
	c.lastHeard.Store(now)
	c.aliveDone = make(chan struct{})
	go c.keepAliveLoop()
	return c, welcome, nil
}

// openMailbox connects to the IMAP server, logs in and selects the mailbox;
// mail already in it is not read.
func (c *conn) openMailbox(ctx context.Context) error {
	raw, err := c.opts.NetDialContext(ctx, "tcp", c.set.imapAddr)
	if err != nil {
		return fmt.Errorf("emailconn: imap: %w", err)
	}
	if c.set.imapTLS {
		tc := tls.Client(raw, c.tlsConfig(c.set.imapAddr))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return fmt.Errorf("emailconn: imap: %w", err)
		}
		raw = tc
	}
	// The greeting and the commands below are bounded by ctx.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()
	ic, err := client.New(raw)
	if err != nil {
		raw.Close()
		return fmt.Errorf("emailconn: imap: %w", err)
	}
	ic.Timeout = imapTimeout
	ic.Updates = c.updates
	c.ic = ic
	fail := func(what string, err error) error {
		_ = ic.Terminate()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("emailconn: imap %s: %w", what, err)
	}
	if !c.set.imapTLS {
		if ok, _ := ic.SupportStartTLS(); ok {
			if err := ic.StartTLS(c.tlsConfig(c.set.imapAddr)); err != nil {
				return fail("starttls", err)
			}
		}
	}
	if err := ic.Login(c.set.imapUser, c.set.imapPass); err != nil {
		return fail("login", err)
	}
	st, err := ic.Select(c.set.mailbox, false)
	if err != nil {
		return fail("select "+c.set.mailbox, err)
	}
	if st.UidNext > 0 {
		c.lastUID = st.UidNext - 1
	} else if uids, err := ic.UidSearch(imap.NewSearchCriteria()); err == nil {
		for _, u := range uids {
			c.lastUID = max(c.lastUID, u)
		}
	}
	return nil
}

func (c *conn) tlsConfig(addr string) *tls.Config {
	host, _, _ := net.SplitHostPort(addr)
	conf := &tls.Config{ServerName: host}
	if c.opts.TLSConfig != nil {
		conf = c.opts.TLSConfig.Clone()
		if conf.ServerName == "" {
			conf.ServerName = host
		}
	}
	return conf
}

// join mails the join and waits for the mail that answers it.
func (c *conn) join(ctx context.Context, join switchboard.Envelope) (switchboard.Envelope, error) {
	data, err := json.Marshal(join)
	if err != nil {
		return switchboard.Envelope{}, err
	}
	if err := c.submit(ctx, "", []json.RawMessage{data}); err != nil {
		return switchboard.Envelope{}, fmt.Errorf("emailconn: mailing the join: %w", err)
	}
	for {
		envs, err := c.next(ctx)
		if err != nil {
			return switchboard.Envelope{}, fmt.Errorf("emailconn: waiting for the welcome: %w", err)
		}
		for i, env := range envs {
			switch env.Type {
			case switchboard.TypeWelcome:
			case switchboard.TypeError:
				var pe *switchboard.Error
				if errors.As(env.Err(), &pe) && (pe.Ref == "" || pe.Ref == c.joinID) {
					return switchboard.Envelope{}, pe
				}
				continue
			default:
				// An earlier connection's mail: the broker mails what
				// follows last_seq again after the welcome.
				continue
			}
			var w switchboard.Welcome
			if err := env.Decode(&w); err != nil || w.Session == "" || w.Peer == "" {
				return switchboard.Envelope{}, fmt.Errorf("emailconn: malformed welcome: %s", env.Payload)
			}
			c.session = w.Session
			if rest := envs[i+1:]; len(rest) > 0 {
				c.mu.Lock()
				c.queue = append(append([]switchboard.Envelope(nil), rest...), c.queue...)
				c.mu.Unlock()
				c.poke()
			}
			return env, nil
		}
	}
}

// next takes what the reader queued, waiting for some.
func (c *conn) next(ctx context.Context) ([]switchboard.Envelope, error) {
	for {
		c.mu.Lock()
		envs, err := c.queue, c.readErr
		c.queue = nil
		c.mu.Unlock()
		if len(envs) > 0 {
			return envs, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-c.wake:
		case <-c.closed:
			return nil, errClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fail records why reading ended.
func (c *conn) fail(err error) {
	select {
	case <-c.closed:
		err = errClosed
	default:
	}
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
	c.poke()
}

// read owns the IMAP connection once dial has opened it: it fetches the
// mail that came after the last it read, then idles until the server tells
// of more, again and again, until the connection fails or is closed.
func (c *conn) read() {
	defer close(c.readerDone)
	// The client's reader blocks while its update channel is full: drain
	// it into one wake-up.
	newMail := make(chan struct{}, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-c.updates:
				select {
				case newMail <- struct{}{}:
				default:
				}
			case <-c.closed:
				return
			}
		}
	}()
	defer func() { <-drained }()
	for {
		if err := c.fetch(); err != nil {
			c.fail(fmt.Errorf("imap: %w", err))
			return
		}
		stop := make(chan struct{})
		idleDone := make(chan error, 1)
		go func() { idleDone <- c.ic.Idle(stop, &client.IdleOptions{LogoutTimeout: -1, PollInterval: time.Second}) }()
		renew := time.NewTimer(imapTimeout / 2)
		var err error
		select {
		case <-newMail:
		case <-renew.C:
		case err = <-idleDone:
			idleDone = nil
		case <-c.closed:
		}
		renew.Stop()
		if idleDone != nil {
			close(stop)
			err = <-idleDone
		}
		select {
		case <-c.closed:
			c.fail(errClosed)
			return
		default:
		}
		if err != nil {
			c.fail(fmt.Errorf("imap idle: %w", err))
			return
		}
	}
}

// fetch reads the mail that came after the last one read, in UID order, and
// queues the broker's envelopes. BODY[] marks each mail \Seen.
func (c *conn) fetch() error {
	set := new(imap.SeqSet)
	set.AddRange(c.lastUID+1, 0)
	section := &imap.BodySectionName{}
	msgs := make(chan *imap.Message, 16)
	done := make(chan error, 1)
	go func() { done <- c.ic.UidFetch(set, []imap.FetchItem{imap.FetchUid, section.FetchItem()}, msgs) }()
	var envs []switchboard.Envelope
	for m := range msgs {
		if m.Uid <= c.lastUID {
			continue // n:* names the last mail even when it is below n
		}
		c.lastUID = m.Uid
		body := m.GetBody(section)
		if body == nil {
			continue
		}
		raw := make([]byte, 0, body.Len())
		buf := make([]byte, 32<<10)
		for {
			n, err := body.Read(buf)
			raw = append(raw, buf[:n]...)
			if err != nil || len(raw) > MaxMailBytes {
				break
			}
		}
		got, err := parseBrokerMail(raw, c.set.broker)
		if err != nil {
			c.opts.Logger.Debug("emailconn: mail skipped", "uid", m.Uid, "err", err)
			continue
		}
		envs = append(envs, got...)
	}
	if err := <-done; err != nil {
		return err
	}
	if len(envs) == 0 {
		return nil
	}
	c.lastHeard.Store(time.Now().UnixNano())
	c.opts.Logger.Debug("emailconn: read", "envelopes", len(envs))
	c.mu.Lock()
	c.queue = append(c.queue, envs...)
	c.mu.Unlock()
	c.poke()
	return nil
}

// submit mails the envelopes to the broker through the submission server,
// with the session header when session is set, within the write timeout.
func (c *conn) submit(ctx context.Context, session string, envs []json.RawMessage) error {
	msg, err := outgoing{from: c.set.from, to: c.set.broker, session: session, envs: envs}.build()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.smtpSend(ctx, msg); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("smtp: %w", err)
	}
	c.lastSent.Store(time.Now().UnixNano())
	c.opts.Logger.Debug("emailconn: mailed", "envelopes", len(envs))
	return nil
}

// smtpSend submits one mail on a connection of its own. On smtp:// it
// uses STARTTLS when the server offers it: the first mail learns whether it
// does.
func (c *conn) smtpSend(ctx context.Context, msg []byte) error {
	u := c.set.smtp
	addr := u.Host
	if u.Port() == "" {
		port := "587"
		if u.Scheme == "smtps" {
			port = "465"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	raw, err := c.opts.NetDialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()
	var sc *smtp.Client
	switch {
	case u.Scheme == "smtps":
		tc := tls.Client(raw, c.tlsConfig(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return err
		}
		sc = smtp.NewClient(tc)
	case c.startTLS.Load() == startTLSYes:
		// It says EHLO itself, as localhost.
		if sc, err = smtp.NewClientStartTLS(raw, c.tlsConfig(addr)); err != nil {
			raw.Close()
			return err
		}
	default:
		sc = smtp.NewClient(raw)
	}
	defer sc.Close()
	if u.Scheme == "smtps" || c.startTLS.Load() != startTLSYes {
		if err := sc.Hello(localName(c.set.from)); err != nil {
			return err
		}
	}
	if u.Scheme == "smtp" && c.startTLS.Load() == startTLSUnknown {
		if ok, _ := sc.Extension("STARTTLS"); ok {
			c.startTLS.Store(startTLSYes)
			_ = sc.Quit()
			return c.smtpSend(ctx, msg)
		}
		c.startTLS.Store(startTLSNo)
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		if err := sc.Auth(sasl.NewPlainClient("", u.User.Username(), pass)); err != nil {
			return err
		}
	}
	if err := sc.SendMail(c.set.from, []string{c.set.broker}, bytes.NewReader(msg)); err != nil {
		return err
	}
	return sc.Quit()
}

// What a connection knows of the submission server's STARTTLS.
const (
	startTLSUnknown = iota
	startTLSYes
	startTLSNo
)

// localName is the name the client gives in EHLO: the domain of its
// address.
func localName(from string) string {
	_, domain, _ := strings.Cut(from, "@")
	if domain == "" {
		return "localhost"
	}
	return domain
}

// Send mails the envelopes to the broker, with the acknowledgement that is
// due, in mails of at most 64 envelopes.
func (c *conn) Send(ctx context.Context, envs []switchboard.Envelope) error {
	var batch []json.RawMessage
	if ack := c.takeAck(); ack != 0 {
		batch = append(batch, ackEnvelope(ack))
	}
	for _, env := range envs {
		data, err := json.Marshal(env)
		if err != nil {
			return fmt.Errorf("emailconn: send: %w", err)
		}
		batch = append(batch, data)
	}
	for len(batch) > 0 {
		n := min(len(batch), maxEnvelopes)
		if err := c.submit(ctx, c.session, batch[:n]); err != nil {
			return fmt.Errorf("emailconn: send: %w", err)
		}
		batch = batch[n:]
	}
	return nil
}

func ackEnvelope(seq uint64) json.RawMessage {
	data, _ := json.Marshal(switchboard.Envelope{V: switchboard.Version, Type: switchboard.TypeAck,
		Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq))})
	return data
}

// takeAck returns the acknowledgement not yet mailed, and forgets it.
func (c *conn) takeAck() uint64 {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	seq := c.ackSeq
	c.ackSeq = 0
	if seq != 0 {
		c.ackMailed = seq
	}
	return seq
}

// ackBurst is how many envelopes may wait for their acknowledgement before
// it is mailed at once: the broker mails no more than 512 ahead of the last
// one it heard.
const ackBurst = 128

// Ack keeps seq to go with the next mail; if none goes within the ack delay,
// or ackBurst envelopes wait for it, the keepalive loop mails it alone.
func (c *conn) Ack(ctx context.Context, seq uint64) error {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	if c.ackSeq == 0 {
		c.ackDue = time.Now().Add(c.cfg.AckDelay)
	}
	c.ackSeq = max(c.ackSeq, seq)
	if c.ackSeq >= c.ackMailed+ackBurst {
		c.ackDue = time.Now()
		select {
		case c.ackWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Recv returns the broker's envelopes as their mail arrives, in order. It
// fails when the IMAP connection failed, or when the broker has been silent
// too long.
func (c *conn) Recv(ctx context.Context) ([]switchboard.Envelope, error) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		envs, rerr := c.queue, c.readErr
		c.queue = nil
		c.mu.Unlock()
		out := envs[:0:0]
		for _, env := range envs {
			if env.Type == switchboard.TypePong && pingMarker.Is(env.Payload) {
				continue
			}
			out = append(out, env)
		}
		if len(out) > 0 {
			return out, nil
		}
		if rerr != nil {
			return nil, fmt.Errorf("emailconn: %w", rerr)
		}
		left := time.Until(time.Unix(0, c.lastHeard.Load()).Add(c.silence))
		if left <= 0 {
			return nil, fmt.Errorf("emailconn: no mail from the broker for %v", c.silence)
		}
		timer.Reset(left)
		select {
		case <-c.wake:
		case <-timer.C:
		case <-c.closed:
			return nil, fmt.Errorf("emailconn: %w", errClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// keepAliveLoop mails an acknowledgement that has waited its delay, and a
// ping when the connection has mailed nothing, or heard nothing, for the
// keepalive interval.
func (c *conn) keepAliveLoop() {
	defer close(c.aliveDone)
	tick := time.NewTicker(min(max(c.cfg.AckDelay/4, 50*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	payload := pingMarker.Payload()
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		case <-c.ackWake:
		}
		since := func(ns int64) time.Duration { return time.Since(time.Unix(0, ns)) }
		c.ackMu.Lock()
		ackDue := c.ackSeq != 0 && time.Now().After(c.ackDue)
		c.ackMu.Unlock()
		idle := since(c.lastSent.Load()) >= c.keepAlive || since(c.lastHeard.Load()) >= c.keepAlive
		if !ackDue && !idle {
			continue
		}
		var envs []switchboard.Envelope
		if idle {
			envs = append(envs, switchboard.Envelope{V: switchboard.Version, Type: switchboard.TypePing, ID: rand.Text(), Payload: payload})
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
		// A mail that fails leaves the failing to Recv and Send; the ack
		// goes with the next one.
		if err := c.Send(ctx, envs); err != nil {
			c.opts.Logger.Debug("emailconn: keepalive", "err", err)
			c.lastSent.Store(time.Now().UnixNano())
		}
		cancel()
	}
}

// Close mails leave when leave is set, then logs out of the mailbox.
func (c *conn) Close(leave bool) error {
	var err error
	c.closeOnce.Do(func() {
		if leave && c.session != "" {
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
			err = c.Send(ctx, []switchboard.Envelope{{V: switchboard.Version, Type: switchboard.TypeLeave, ID: rand.Text()}})
			cancel()
		}
		close(c.closed)
		<-c.readerDone
		if c.aliveDone != nil {
			<-c.aliveDone
		}
		if c.ic != nil {
			// Logout waits for the server's answer, for at most the
			// command timeout; Terminate then drops the connection.
			done := make(chan struct{})
			go func() { _ = c.ic.Logout(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Second):
				_ = c.ic.Terminate()
				<-done
			}
		}
	})
	return err
}
