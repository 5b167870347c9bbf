package broker

import "time"

// entry is one message in a session's sessionBox.
type entry struct {
	seq  uint64
	typ  string
	data []byte // the envelope's JSON, seq included
	at   time.Time
}

// sessionBox keeps a session's messages, seq-numbered, until they are
// acknowledged, within a bound (docs/protocol.md, section 4). The frames
// without a seq that wait to be written (pong) count against the same bound.
// The session's lock guards it. A session whose messages are in a Store uses
// it for those frames only.
type sessionBox struct {
	entries []entry // seqs contiguous and ascending
	head    int     // entries[head:] are live; the rest awaits compaction
	bytes   int
	// direct are frames without seq, not kept for resume, waiting to be
	// written; directBytes is their size.
	direct      [][]byte
	directBytes int
	last        uint64 // last seq assigned
	written     uint64 // highest seq handed to a connection
	acked       uint64
	dropped     uint64 // highest seq forgotten before it was acknowledged
	maxMsgs     int
	maxSize     int
}

func (m *sessionBox) live() []entry { return m.entries[m.head:] }

// push appends f as the next seq. It reports false when the unwritten
// backlog has passed the bound: the session has stopped taking its messages.
func (m *sessionBox) push(f frame, now time.Time) (entry, bool) {
	m.last++
	e := entry{seq: m.last, typ: f.typ, data: f.withSeq(m.last), at: now}
	m.entries = append(m.entries, e)
	m.bytes += len(e.data)
	return e, m.fit()
}

// pushDirect appends a frame without seq. It reports false, as push does,
// when the unwritten backlog has passed the bound.
func (m *sessionBox) pushDirect(data []byte) bool {
	m.direct = append(m.direct, data)
	m.directBytes += len(data)
	return m.fit()
}

// takeDirect hands out the frames without seq.
func (m *sessionBox) takeDirect() [][]byte {
	d := m.direct
	m.direct, m.directBytes = nil, 0
	return d
}

// fit forgets messages written but not acknowledged, oldest first, while
// the sessionBox is over its bound. It reports false when it is over all the
// same: what is over is not written yet.
func (m *sessionBox) fit() bool {
	for m.over() {
		live := m.live()
		if len(live) == 0 || live[0].seq > m.written {
			return false
		}
		m.dropped = live[0].seq
		m.popFront()
	}
	return true
}

// pushUnbounded appends f past the bound: for the last word to a session
// that is being ended.
func (m *sessionBox) pushUnbounded(f frame, now time.Time) {
	m.last++
	e := entry{seq: m.last, typ: f.typ, data: f.withSeq(m.last), at: now}
	m.entries = append(m.entries, e)
	m.bytes += len(e.data)
}

func (m *sessionBox) over() bool {
	n := len(m.entries) - m.head + len(m.direct)
	return n > m.maxMsgs || (m.bytes+m.directBytes > m.maxSize && n > 1)
}

func (m *sessionBox) popFront() {
	m.bytes -= len(m.entries[m.head].data)
	m.entries[m.head] = entry{}
	m.head++
	if m.head >= 64 && m.head*2 >= len(m.entries) {
		n := copy(m.entries, m.entries[m.head:])
		clear(m.entries[n:])
		m.entries = m.entries[:n]
		m.head = 0
	}
}

// ack forgets everything up to seq. It reports false when seq was never sent.
func (m *sessionBox) ack(seq uint64) bool {
	if seq > m.last {
		return false
	}
	if seq <= m.acked {
		return true
	}
	m.acked = seq
	if seq > m.written {
		m.written = seq
	}
	for len(m.live()) > 0 && m.live()[0].seq <= seq {
		m.popFront()
	}
	return true
}

// after returns up to max entries with seq > after, and whether after
// reaches back past what was forgotten.
func (m *sessionBox) after(after uint64, max int) ([]entry, bool) {
	if after < m.dropped {
		return nil, false
	}
	live := m.live()
	if len(live) == 0 || live[len(live)-1].seq <= after {
		return nil, true
	}
	i := 0
	if after >= live[0].seq {
		i = int(after - live[0].seq + 1)
	}
	out := live[i:]
	if len(out) > max {
		out = out[:max]
	}
	if s := out[len(out)-1].seq; s > m.written {
		m.written = s
	}
	return out, true
}

func (m *sessionBox) depth() int { return len(m.entries) - m.head }
