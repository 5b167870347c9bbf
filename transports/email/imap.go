package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	imapclient "github.com/emersion/go-imap/client"
)

// Timings of the IMAP receiver.
const (
	imapRetryMin = time.Second
	imapRetryMax = time.Minute
	// idleRestart is how often IDLE is restarted, so that servers that log
	// out idle clients (RFC 3501 allows it after 30 min) do not.
	idleRestart = 20 * time.Minute
	// fetchBatch is how many mails are fetched in one command.
	fetchBatch = 16
)

// errNotConnected is the receiver's state before its first connection.
var errNotConnected = errors.New("not connected yet")

// imapReceiver reads the broker's mailbox over IMAP: it handles every mail
// not yet \Seen, marks it, and IDLEs until the server tells of more. It
// reconnects with backoff after any fault.
type imapReceiver struct {
	t           *Transport
	addr        string
	implicitTLS bool
	user, pass  string
	mailbox     string

	mu  sync.Mutex
	err error

	// Only the run goroutine touches these.
	uidValidity uint32
	lastUID     uint32
}

func newIMAPReceiver(t *Transport, rawURL string) (*imapReceiver, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("email: imap_url: %w", err)
	}
	r := &imapReceiver{t: t, addr: u.Host, err: errNotConnected}
	switch u.Scheme {
	case "imap":
	case "imaps":
		r.implicitTLS = true
	default:
		return nil, fmt.Errorf("email: imap_url: scheme %q: want imap or imaps", u.Scheme)
	}
	if u.User == nil {
		return nil, errors.New("email: imap_url needs user:password@")
	}
	r.user = u.User.Username()
	r.pass, _ = u.User.Password()
	r.mailbox = strings.TrimPrefix(u.Path, "/")
	if r.mailbox == "" {
		r.mailbox = "INBOX"
	}
	return r, nil
}

// Err is nil while the receiver is connected with its mailbox selected.
func (r *imapReceiver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *imapReceiver) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// run connects and reads until ctx ends, reconnecting with backoff.
func (r *imapReceiver) run(ctx context.Context) {
	delay := imapRetryMin
	for {
		connected, err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("connection closed")
		}
		r.setErr(err)
		r.t.m.reconnect()
		if connected {
			delay = imapRetryMin
		}
		r.t.log.Warn("email: IMAP connection lost; connecting again", "addr", r.addr, "error", err, "in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(delay*2, imapRetryMax)
	}
}

func (r *imapReceiver) dial() (*imapclient.Client, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	host, _, _ := net.SplitHostPort(r.addr)
	if r.implicitTLS {
		return imapclient.DialWithDialerTLS(d, r.addr, r.t.opts.tlsConfig(host))
	}
	c, err := imapclient.DialWithDialer(d, r.addr)
	if err != nil {
		return nil, err
	}
	c.ErrorLog = log.New(io.Discard, "", 0)
	if ok, _ := c.SupportStartTLS(); ok {
		if err := c.StartTLS(r.t.opts.tlsConfig(host)); err != nil {
			c.Terminate()
			return nil, err
		}
	} else if !loopback(r.addr) {
		c.Terminate()
		return nil, errors.New("the IMAP server offers no STARTTLS: login in the clear refused (use imaps://)")
	}
	return c, nil
}

// session is one connection's life: it reports whether it got as far as
// selecting the mailbox, and why it ended.
func (r *imapReceiver) session(ctx context.Context) (connected bool, err error) {
	c, err := r.dial()
	if err != nil {
		return false, err
	}
	c.ErrorLog = log.New(io.Discard, "", 0)
	stopWatch := context.AfterFunc(ctx, func() { _ = c.Terminate() })
	defer stopWatch()
	defer c.Terminate()
	if err := c.Login(r.user, r.pass); err != nil {
		return false, fmt.Errorf("login: %w", err)
	}
	if ok, err := c.Support("IDLE"); err != nil || !ok {
		return false, errors.New("the IMAP server does not support IDLE")
	}
	// The client blocks while its update channel is full: a goroutine
	// keeps it drained and turns updates into one wake-up.
	updates := make(chan imapclient.Update, 64)
	wake := make(chan struct{}, 1)
	c.Updates = updates
	drained := make(chan struct{})
	defer func() { _ = c.Terminate(); <-drained }() // the reader ends, and with it this goroutine
	go func() {
		defer close(drained)
		for {
			select {
			case u := <-updates:
				if _, ok := u.(*imapclient.MailboxUpdate); ok {
					select {
					case wake <- struct{}{}:
					default:
					}
				}
			case <-c.LoggedOut():
				return
			}
		}
	}()
	st, err := c.Select(r.mailbox, false)
	if err != nil {
		return false, fmt.Errorf("select %s: %w", r.mailbox, err)
	}
	if st.UidValidity != r.uidValidity {
		if r.uidValidity != 0 {
			r.t.log.Warn("email: the mailbox's UIDVALIDITY changed: every unseen mail is looked at again", "mailbox", r.mailbox)
		}
		r.uidValidity, r.lastUID = st.UidValidity, 0
	}
	r.setErr(nil)
	r.t.log.Info("email: reading the mailbox over IMAP", "addr", r.addr, "mailbox", r.mailbox)
	for {
		// Any wake-up so far is covered by the search that follows.
		select {
		case <-wake:
		default:
		}
		if err := r.fetchNew(c); err != nil {
			return true, err
		}
		stop := make(chan struct{})
		idled := make(chan error, 1)
		go func() { idled <- c.Idle(stop, &imapclient.IdleOptions{LogoutTimeout: idleRestart, PollInterval: -1}) }()
		select {
		case <-wake:
			close(stop)
			if err := <-idled; err != nil {
				return true, err
			}
		case err := <-idled:
			if err == nil {
				err = errors.New("IDLE ended")
			}
			return true, err
		case <-c.LoggedOut():
			close(stop)
			<-idled
			return true, errors.New("the server closed the connection")
		case <-ctx.Done():
			close(stop)
			<-idled
			return true, ctx.Err()
		}
	}
}

// fetchNew handles every mail not yet \Seen (nor \Deleted) above the last
// UID handled, oldest first, and marks each once handled.
func (r *imapReceiver) fetchNew(c *imapclient.Client) error {
	crit := imap.NewSearchCriteria()
	crit.WithoutFlags = []string{imap.SeenFlag, imap.DeletedFlag}
	if r.lastUID > 0 {
		crit.Uid = new(imap.SeqSet)
		crit.Uid.AddRange(r.lastUID+1, 0)
	}
	uids, err := c.UidSearch(crit)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	// "n:*" holds the last mail even when its UID is below n.
	uids = slices.DeleteFunc(uids, func(u uint32) bool { return u <= r.lastUID })
	slices.Sort(uids)
	for len(uids) > 0 {
		n := min(len(uids), fetchBatch)
		if err := r.fetch(c, uids[:n]); err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}

// fetch handles the mails of uids: at most MaxMailBytes+1 of each is read
// (BODY.PEEK, so that nothing is \Seen before it is handled).
func (r *imapReceiver) fetch(c *imapclient.Client, uids []uint32) error {
	set := new(imap.SeqSet)
	set.AddNum(uids...)
	section := &imap.BodySectionName{Peek: true, Partial: []int{0, r.t.opts.MaxMailBytes + 1}}
	msgs := make(chan *imap.Message, len(uids))
	if err := c.UidFetch(set, []imap.FetchItem{imap.FetchUid, section.FetchItem()}, msgs); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	type mail struct {
		uid uint32
		raw []byte
	}
	var got []mail
	for m := range msgs {
		var raw []byte
		if body := m.GetBody(section); body != nil {
			raw, _ = io.ReadAll(io.LimitReader(body, int64(r.t.opts.MaxMailBytes)+1))
		}
		got = append(got, mail{m.Uid, raw})
	}
	slices.SortFunc(got, func(a, b mail) int { return int(a.uid) - int(b.uid) })
	done := new(imap.SeqSet)
	for _, m := range got {
		r.t.log.Debug("email: mail fetched", "uid", m.uid, "bytes", len(m.raw))
		if m.raw != nil {
			r.t.handleMail(m.raw, false)
		}
		done.AddNum(m.uid)
		r.lastUID = max(r.lastUID, m.uid)
	}
	if done.Empty() {
		return nil
	}
	flags := []any{imap.SeenFlag}
	if r.t.opts.IMAPDone == DoneDelete {
		flags = append(flags, imap.DeletedFlag)
	}
	if err := c.UidStore(done, imap.FormatFlagsOp(imap.AddFlags, true), flags, nil); err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	if r.t.opts.IMAPDone == DoneDelete {
		if err := c.Expunge(nil); err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
	}
	return nil
}
