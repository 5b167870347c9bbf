package broker

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryStore is an in-process Store: brokers in one process that share it
// (and a MemoryBackplane) behave as a cluster whose sessions outlive their
// node. It is the reference for the Store contract; a real cluster uses the
// Redis one. The zero value is ready to use. Expiry is not kept: sessions
// stay until deleted.
type MemoryStore struct {
	mu       sync.Mutex
	sessions map[string]*storedSession
}

var _ Store = (*MemoryStore)(nil)

type storedSession struct {
	rec     SessionRecord
	msgs    []storedMsg // seqs ascending and contiguous
	last    uint64
	written uint64
	acked   uint64
	dropped uint64
}

type storedMsg struct {
	seq  uint64
	data []byte
}

func (m *MemoryStore) get(id string) (*storedSession, error) {
	s := m.sessions[id]
	if s == nil {
		return nil, ErrNoSession
	}
	return s, nil
}

// Save implements Store.
func (m *MemoryStore) Save(_ context.Context, rec SessionRecord, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = make(map[string]*storedSession)
	}
	if s := m.sessions[rec.ID]; s != nil {
		s.rec = rec
		return nil
	}
	l := rec.Last
	m.sessions[rec.ID] = &storedSession{rec: rec, last: l, written: l, acked: l, dropped: l}
	return nil
}

// Load implements Store.
func (m *MemoryStore) Load(_ context.Context, id string) (SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(id)
	if err != nil {
		return SessionRecord{}, err
	}
	return s.rec, nil
}

// Push implements Store.
func (m *MemoryStore) Push(_ context.Context, id, _ string, body []byte, max int) (uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(id)
	if err != nil {
		return 0, false, err
	}
	s.last++
	data := make([]byte, 0, len(body)+24)
	data = append(data, `{"seq":`...)
	data = strconv.AppendUint(data, s.last, 10)
	data = append(data, ',')
	data = append(data, body...)
	s.msgs = append(s.msgs, storedMsg{s.last, data})
	if max <= 0 {
		return s.last, false, nil
	}
	for len(s.msgs) > max && s.msgs[0].seq <= s.written {
		s.dropped = s.msgs[0].seq
		s.msgs = s.msgs[1:]
	}
	return s.last, len(s.msgs) > max, nil
}

// Take implements Store.
func (m *MemoryStore) Take(_ context.Context, id string, after uint64, n int) ([][]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(id)
	if err != nil {
		return nil, after, Errorf(CodeSessionExpired, "the session has ended")
	}
	if after < s.dropped {
		return nil, after, Errorf(CodeSessionExpired, "messages after seq %d were forgotten", after)
	}
	var out [][]byte
	last := after
	for _, msg := range s.msgs {
		if msg.seq > after && len(out) < n {
			out = append(out, msg.data)
			last = msg.seq
		}
	}
	if last > s.written {
		s.written = last
	}
	return out, last, nil
}

// Ack implements Store.
func (m *MemoryStore) Ack(_ context.Context, id string, seq uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(id)
	if err != nil {
		return false, err
	}
	if seq > s.last {
		return false, nil
	}
	if seq > s.acked {
		s.acked = seq
	}
	if seq > s.written {
		s.written = seq
	}
	for len(s.msgs) > 0 && s.msgs[0].seq <= seq {
		s.msgs = s.msgs[1:]
	}
	return true, nil
}

// Seqs implements Store.
func (m *MemoryStore) Seqs(_ context.Context, id string) (uint64, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(id)
	if err != nil {
		return 0, 0, err
	}
	return s.last, s.dropped, nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(context.Context, []string, time.Duration) error { return nil }

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}
