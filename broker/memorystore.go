// This file owns the MemoryStore, the in-process Store every single node
// runs on; its mailboxes are mailbox.go's.

package broker

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is the in-process Store. A broker given no Store makes one
// of its own; brokers in one process that share one (and a
// MemoryBackplane) behave as a cluster whose sessions outlive their node.
// It meets the whole Store contract (brokertest.RunStore), bytes bound
// included. The zero value is ready to use. Expiry is not kept: sessions
// stay until deleted.
type MemoryStore struct {
	// sessions holds a *memBox by session id: a sync.Map, read without a
	// lock that every push on every core would share.
	sessions sync.Map
	mu       sync.Mutex // serializes Save
	// private is set on the store a broker makes for itself, which no
	// other node reads: it keeps no records (Load finds none), only
	// mailboxes, so that an idle session costs less.
	private bool
}

var _ Store = (*MemoryStore)(nil)

// memBox is one session in a MemoryStore: its record and its mailbox.
type memBox struct {
	mu  sync.Mutex
	rec *SessionRecord // nil in a private store
	mb  mailbox
}

func (m *MemoryStore) get(id string) *memBox {
	s, _ := m.sessions.Load(id)
	b, _ := s.(*memBox)
	return b
}

// Save implements Store.
func (m *MemoryStore) Save(_ context.Context, rec SessionRecord, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.get(rec.ID); s != nil {
		if !m.private {
			s.mu.Lock()
			s.rec = &rec
			s.mu.Unlock()
		}
		return nil
	}
	s := &memBox{}
	if !m.private {
		s.rec = &rec
	}
	s.mb.start(rec.Last)
	m.sessions.Store(rec.ID, s)
	return nil
}

// Load implements Store.
func (m *MemoryStore) Load(_ context.Context, id string) (SessionRecord, error) {
	s := m.get(id)
	if s == nil {
		return SessionRecord{}, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return SessionRecord{}, ErrNoSession
	}
	return *s.rec, nil
}

// Push implements Store.
func (m *MemoryStore) Push(_ context.Context, ds []Delivery) error {
	for i := range ds {
		d := &ds[i]
		s := m.get(d.Session)
		if s == nil {
			d.Seq, d.Slow, d.Err = 0, false, ErrNoSession
			continue
		}
		s.mu.Lock()
		d.Seq, d.Slow = s.mb.push(d.Body, d.Max, d.MaxBytes)
		d.Err = nil
		s.mu.Unlock()
	}
	return nil
}

// Take implements Store.
func (m *MemoryStore) Take(_ context.Context, id string, after uint64, n int, buf []Stored) ([]Stored, error) {
	s := m.get(id)
	if s == nil {
		return buf, Errorf(CodeSessionExpired, "the session has ended")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out, ok := s.mb.after(after, n, buf)
	if !ok {
		return buf, Errorf(CodeSessionExpired, "messages after seq %d were forgotten", after)
	}
	return out, nil
}

// Written implements Store.
func (m *MemoryStore) Written(_ context.Context, id string, seq uint64) error {
	s := m.get(id)
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	s.mb.markWritten(seq)
	s.mu.Unlock()
	return nil
}

// Ack implements Store.
func (m *MemoryStore) Ack(_ context.Context, id string, seq uint64) (bool, error) {
	s := m.get(id)
	if s == nil {
		return false, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.ack(seq), nil
}

// Seqs implements Store.
func (m *MemoryStore) Seqs(_ context.Context, id string) (uint64, uint64, error) {
	s := m.get(id)
	if s == nil {
		return 0, 0, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.last, s.mb.dropped, nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(context.Context, []string, time.Duration) error { return nil }

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string) error {
	m.sessions.Delete(id)
	return nil
}

// box returns the session's mailbox itself (see boxOf), or nil when the
// store has no such session.
func (m *MemoryStore) box(id string) sessionBox {
	if s := m.get(id); s != nil {
		return s
	}
	return nil
}

func (s *memBox) push(_ context.Context, body []byte, max, maxBytes int) (uint64, bool, error) {
	s.mu.Lock()
	seq, slow := s.mb.push(body, max, maxBytes)
	s.mu.Unlock()
	return seq, slow, nil
}

func (s *memBox) ack(_ context.Context, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.ack(seq), nil
}
