package mailserver

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-imap/backend/backendutil"
	"github.com/emersion/go-imap/backend/memory"
)

// Errors of the mail store.
var (
	ErrNoMailbox   = errors.New("mailserver: no such mailbox")
	ErrMailboxFull = errors.New("mailserver: mailbox full")
	ErrBadLogin    = errors.New("mailserver: bad username or password")
)

// store holds every account's mailboxes in memory and tells the IMAP server
// of new and expunged mail. It is safe for concurrent use: one lock guards
// every account, mailbox and message.
type store struct {
	mu          sync.Mutex
	domain      string
	accounts    map[string]*user // by lower-cased address
	open        bool
	maxAccounts int
	maxMessages int
	updates     chan backend.Update
	uidValidity uint32
	closed      chan struct{}

	changed chan struct{} // closed and replaced on every delivery

	qmu   sync.Mutex
	queue []backend.Update // updates for the IMAP server, in order
	qwake chan struct{}
}

// maxQueuedUpdates bounds the updates waiting for the IMAP server; past it,
// new-mail updates are dropped (a client IDLEing hears of the mail with the
// next one).
const maxQueuedUpdates = 10000

func newStore(domain string, open bool, maxAccounts, maxMessages int) *store {
	return &store{
		domain:      strings.ToLower(domain),
		accounts:    make(map[string]*user),
		open:        open,
		maxAccounts: maxAccounts,
		maxMessages: maxMessages,
		updates:     make(chan backend.Update),
		qwake:       make(chan struct{}, 1),
		uidValidity: uint32(time.Now().Unix()),
		closed:      make(chan struct{}),
		changed:     make(chan struct{}),
	}
}

// messages returns a copy of the INBOX of address, and a channel that is
// closed on the next delivery.
func (s *store) messages(address string) ([][]byte, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	if u, ok := s.accounts[strings.ToLower(address)]; ok {
		for _, m := range u.boxes["INBOX"].msgs {
			out = append(out, m.Body)
		}
	}
	return out, s.changed
}

var (
	_ backend.Backend        = (*store)(nil)
	_ backend.BackendUpdater = (*store)(nil)
)

// Updates implements backend.BackendUpdater: the IMAP server hears of new
// mail here and tells the clients that IDLE on the mailbox.
func (s *store) Updates() <-chan backend.Update { return s.updates }

// notify queues an update for the IMAP server without holding up the
// caller; dispatch hands them over in order.
func (s *store) notify(u backend.Update) {
	u.Done() // made now: the server closes it from another goroutine
	s.qmu.Lock()
	if _, ok := u.(*backend.MailboxUpdate); ok && len(s.queue) >= maxQueuedUpdates {
		s.qmu.Unlock()
		return
	}
	s.queue = append(s.queue, u)
	s.qmu.Unlock()
	select {
	case s.qwake <- struct{}{}:
	default:
	}
}

// dispatch hands queued updates to the IMAP server, one at a time, each
// once the one before has gone out to every client, until the store closes.
func (s *store) dispatch() {
	for {
		s.qmu.Lock()
		var u backend.Update
		if len(s.queue) > 0 {
			u = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
		}
		s.qmu.Unlock()
		if u == nil {
			select {
			case <-s.qwake:
				continue
			case <-s.closed:
				return
			}
		}
		select {
		case s.updates <- u:
		case <-s.closed:
			return
		}
		select {
		case <-u.Done():
		case <-s.closed:
			return
		}
	}
}

// addAccount makes (or changes the password of) the account of address.
func (s *store) addAccount(address, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	address = strings.ToLower(address)
	if u, ok := s.accounts[address]; ok {
		u.password, u.fixed = password, true
		return
	}
	s.accounts[address] = s.newUserLocked(address, password, true)
}

func (s *store) newUserLocked(address, password string, fixed bool) *user {
	u := &user{s: s, name: address, password: password, fixed: fixed, boxes: map[string]*mailbox{}}
	u.boxes["INBOX"] = &mailbox{u: u, name: "INBOX", uidNext: 1, subscribed: true}
	return u
}

// lookupLocked finds the account of address, making it when accounts are
// open and address is at the domain.
func (s *store) lookupLocked(address string) (*user, error) {
	address = strings.ToLower(address)
	if u, ok := s.accounts[address]; ok {
		return u, nil
	}
	at := strings.LastIndexByte(address, '@')
	if !s.open || at < 1 || address[at+1:] != s.domain {
		return nil, ErrNoMailbox
	}
	if len(s.accounts) >= s.maxAccounts {
		return nil, ErrMailboxFull
	}
	u := s.newUserLocked(address, "", false)
	s.accounts[address] = u
	return u, nil
}

// hasMailbox reports whether mail for address can be delivered here.
func (s *store) hasMailbox(address string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookupLocked(address)
	if err != nil {
		return err
	}
	if len(u.boxes["INBOX"].msgs) >= s.maxMessages {
		return ErrMailboxFull
	}
	return nil
}

// deliver appends raw to the INBOX of address and wakes its IDLE clients.
func (s *store) deliver(address string, raw []byte) error {
	s.mu.Lock()
	u, err := s.lookupLocked(address)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	box := u.boxes["INBOX"]
	if len(box.msgs) >= s.maxMessages {
		s.mu.Unlock()
		return ErrMailboxFull
	}
	box.appendLocked(raw, []string{imap.RecentFlag}, time.Now())
	status := box.statusLocked([]imap.StatusItem{imap.StatusMessages, imap.StatusRecent})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.notify(&backend.MailboxUpdate{Update: backend.NewUpdate(u.name, "INBOX"), MailboxStatus: status})
	return nil
}

// Login implements backend.Backend. An open account (made on first use, not
// listed in the options) takes any password.
func (s *store) Login(_ *imap.ConnInfo, username, password string) (backend.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.lookupLocked(username)
	if err != nil || (u.fixed && u.password != password) {
		return nil, ErrBadLogin
	}
	return u, nil
}

// user is one account.
type user struct {
	s        *store
	name     string
	password string
	fixed    bool // listed in the options: its password is checked
	boxes    map[string]*mailbox
}

func (u *user) Username() string { return u.name }
func (u *user) Logout() error    { return nil }

func (u *user) ListMailboxes(subscribed bool) ([]backend.Mailbox, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	names := make([]string, 0, len(u.boxes))
	for n, b := range u.boxes {
		if !subscribed || b.subscribed {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make([]backend.Mailbox, len(names))
	for i, n := range names {
		out[i] = u.boxes[n]
	}
	return out, nil
}

func (u *user) GetMailbox(name string) (backend.Mailbox, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	b, ok := u.boxes[name]
	if !ok {
		return nil, backend.ErrNoSuchMailbox
	}
	return b, nil
}

// maxMailboxes bounds the mailboxes of one account.
const maxMailboxes = 16

func (u *user) CreateMailbox(name string) error {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if _, ok := u.boxes[name]; ok || strings.EqualFold(name, "INBOX") {
		return backend.ErrMailboxAlreadyExists
	}
	if len(u.boxes) >= maxMailboxes {
		return errors.New("mailserver: too many mailboxes")
	}
	u.boxes[name] = &mailbox{u: u, name: name, uidNext: 1}
	return nil
}

func (u *user) DeleteMailbox(name string) error {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if name == "INBOX" {
		return errors.New("mailserver: INBOX cannot be deleted")
	}
	if _, ok := u.boxes[name]; !ok {
		return backend.ErrNoSuchMailbox
	}
	delete(u.boxes, name)
	return nil
}

func (u *user) RenameMailbox(existing, newName string) error {
	return errors.New("mailserver: RENAME is not supported")
}

// mailbox is one folder of an account. Its messages are memory.Message
// values, which know how to be fetched and searched; every access holds the
// store's lock.
type mailbox struct {
	u          *user
	name       string
	msgs       []*memory.Message
	uidNext    uint32
	subscribed bool
}

func (b *mailbox) Name() string { return b.name }

func (b *mailbox) Info() (*imap.MailboxInfo, error) {
	return &imap.MailboxInfo{Delimiter: "/", Name: b.name}, nil
}

func (b *mailbox) appendLocked(raw []byte, flags []string, date time.Time) {
	b.msgs = append(b.msgs, &memory.Message{Uid: b.uidNext, Date: date, Size: uint32(len(raw)), Flags: flags, Body: raw})
	b.uidNext++
}

func (b *mailbox) statusLocked(items []imap.StatusItem) *imap.MailboxStatus {
	st := imap.NewMailboxStatus(b.name, items)
	st.Flags = []string{imap.SeenFlag, imap.AnsweredFlag, imap.FlaggedFlag, imap.DeletedFlag, imap.DraftFlag}
	st.PermanentFlags = []string{imap.SeenFlag, imap.AnsweredFlag, imap.FlaggedFlag, imap.DeletedFlag, imap.DraftFlag, `\*`}
	for i, m := range b.msgs {
		if !hasFlag(m.Flags, imap.SeenFlag) {
			st.UnseenSeqNum = uint32(i + 1)
			break
		}
	}
	for _, it := range items {
		switch it {
		case imap.StatusMessages:
			st.Messages = uint32(len(b.msgs))
		case imap.StatusUidNext:
			st.UidNext = b.uidNext
		case imap.StatusUidValidity:
			st.UidValidity = b.u.s.uidValidity
		case imap.StatusRecent:
			for _, m := range b.msgs {
				if hasFlag(m.Flags, imap.RecentFlag) {
					st.Recent++
				}
			}
		case imap.StatusUnseen:
			for _, m := range b.msgs {
				if !hasFlag(m.Flags, imap.SeenFlag) {
					st.Unseen++
				}
			}
		}
	}
	return st
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func (b *mailbox) Status(items []imap.StatusItem) (*imap.MailboxStatus, error) {
	b.u.s.mu.Lock()
	defer b.u.s.mu.Unlock()
	return b.statusLocked(items), nil
}

func (b *mailbox) SetSubscribed(v bool) error {
	b.u.s.mu.Lock()
	b.subscribed = v
	b.u.s.mu.Unlock()
	return nil
}

func (b *mailbox) Check() error { return nil }

func (b *mailbox) ListMessages(uid bool, set *imap.SeqSet, items []imap.FetchItem, ch chan<- *imap.Message) error {
	defer close(ch)
	// Fetched under the lock, sent without it: the server's writer may be slow.
	b.u.s.mu.Lock()
	var out []*imap.Message
	for i, m := range b.msgs {
		seq := uint32(i + 1)
		id := seq
		if uid {
			id = m.Uid
		}
		if !set.Contains(id) {
			continue
		}
		f, err := m.Fetch(seq, items)
		if err != nil {
			continue
		}
		// The \Recent flag is seen by the first session that fetches it.
		m.Flags = backendutil.UpdateFlags(m.Flags, imap.RemoveFlags, []string{imap.RecentFlag})
		out = append(out, f)
	}
	b.u.s.mu.Unlock()
	for _, f := range out {
		ch <- f
	}
	return nil
}

func (b *mailbox) SearchMessages(uid bool, c *imap.SearchCriteria) ([]uint32, error) {
	b.u.s.mu.Lock()
	defer b.u.s.mu.Unlock()
	var ids []uint32
	for i, m := range b.msgs {
		seq := uint32(i + 1)
		if ok, err := m.Match(seq, c); err != nil || !ok {
			continue
		}
		if uid {
			ids = append(ids, m.Uid)
		} else {
			ids = append(ids, seq)
		}
	}
	return ids, nil
}

func (b *mailbox) CreateMessage(flags []string, date time.Time, body imap.Literal) error {
	raw, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if date.IsZero() {
		date = time.Now()
	}
	b.u.s.mu.Lock()
	if len(b.msgs) >= b.u.s.maxMessages {
		b.u.s.mu.Unlock()
		return ErrMailboxFull
	}
	b.appendLocked(bytes.Clone(raw), append([]string(nil), flags...), date)
	status := b.statusLocked([]imap.StatusItem{imap.StatusMessages})
	b.u.s.mu.Unlock()
	b.u.s.notify(&backend.MailboxUpdate{Update: backend.NewUpdate(b.u.name, b.name), MailboxStatus: status})
	return nil
}

func (b *mailbox) UpdateMessagesFlags(uid bool, set *imap.SeqSet, op imap.FlagsOp, flags []string) error {
	b.u.s.mu.Lock()
	defer b.u.s.mu.Unlock()
	for i, m := range b.msgs {
		id := uint32(i + 1)
		if uid {
			id = m.Uid
		}
		if set.Contains(id) {
			m.Flags = backendutil.UpdateFlags(m.Flags, op, flags)
		}
	}
	return nil
}

func (b *mailbox) CopyMessages(uid bool, set *imap.SeqSet, dest string) error {
	b.u.s.mu.Lock()
	defer b.u.s.mu.Unlock()
	d, ok := b.u.boxes[dest]
	if !ok {
		return backend.ErrNoSuchMailbox
	}
	for i, m := range b.msgs {
		id := uint32(i + 1)
		if uid {
			id = m.Uid
		}
		if set.Contains(id) {
			if len(d.msgs) >= b.u.s.maxMessages {
				return ErrMailboxFull
			}
			d.appendLocked(m.Body, append([]string(nil), m.Flags...), m.Date)
		}
	}
	return nil
}

// Expunge removes the messages flagged \Deleted and tells the clients that
// have the mailbox selected, last first, as RFC 3501 numbers them.
func (b *mailbox) Expunge() error {
	b.u.s.mu.Lock()
	var gone []uint32
	kept := b.msgs[:0]
	for i, m := range b.msgs {
		if hasFlag(m.Flags, imap.DeletedFlag) {
			gone = append(gone, uint32(i+1))
			continue
		}
		kept = append(kept, m)
	}
	clear(b.msgs[len(kept):])
	b.msgs = kept
	b.u.s.mu.Unlock()
	// Last first, so that the numbers stay right as each is removed.
	for i := len(gone) - 1; i >= 0; i-- {
		b.u.s.notify(&backend.ExpungeUpdate{Update: backend.NewUpdate(b.u.name, b.name), SeqNum: gone[i]})
	}
	return nil
}
