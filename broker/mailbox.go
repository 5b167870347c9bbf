// This file owns the mailbox as a MemoryStore keeps it: seqs, the bound and
// what it forgets, written and acknowledged marks (docs/protocol.md,
// section 4).

package broker

// mailbox is a session's mailbox as a MemoryStore keeps it: its messages,
// seq-numbered, until they are acknowledged, within the bound each push
// names (docs/protocol.md, section 4). Its owner's lock guards it.
type mailbox struct {
	msgs    []Stored // msgs[head:] are live, seqs contiguous and ascending
	head    int      // the rest awaits compaction
	bytes   int      // of the live bodies
	last    uint64   // last seq given
	written uint64   // highest seq handed to a connection
	acked   uint64
	dropped uint64 // highest seq forgotten before it was acknowledged
}

// start sets the counters of a new mailbox at last: what came before is
// counted as forgotten.
func (m *mailbox) start(last uint64) {
	m.last, m.written, m.acked, m.dropped = last, last, last, last
}

func (m *mailbox) live() []Stored { return m.msgs[m.head:] }

// push appends body as the next seq. With max > 0 it then forgets messages
// written but not acknowledged, oldest first, while over the bound; slow
// reports that it is over all the same: what is over is not written yet.
func (m *mailbox) push(body []byte, max, maxBytes int) (seq uint64, slow bool) {
	m.last++
	m.msgs = append(m.msgs, Stored{Seq: m.last, Body: body})
	m.bytes += len(body)
	if max <= 0 {
		return m.last, false
	}
	for m.over(max, maxBytes) {
		live := m.live()
		if live[0].Seq > m.written {
			return m.last, true
		}
		m.dropped = live[0].Seq
		m.popFront()
	}
	return m.last, false
}

func (m *mailbox) over(max, maxBytes int) bool {
	n := len(m.msgs) - m.head
	return n > max || (maxBytes > 0 && m.bytes > maxBytes && n > 1)
}

func (m *mailbox) popFront() {
	m.bytes -= len(m.msgs[m.head].Body)
	m.msgs[m.head] = Stored{}
	m.head++
	if m.head >= 64 && m.head*2 >= len(m.msgs) {
		n := copy(m.msgs, m.msgs[m.head:])
		clear(m.msgs[n:])
		m.msgs = m.msgs[:n]
		m.head = 0
	}
}

// markWritten records that the messages up to seq were handed out.
func (m *mailbox) markWritten(seq uint64) {
	if seq > m.last {
		seq = m.last
	}
	if seq > m.written {
		m.written = seq
	}
}

// ack forgets everything up to seq. It reports false when seq was never given.
func (m *mailbox) ack(seq uint64) bool {
	if seq > m.last {
		return false
	}
	if seq <= m.acked {
		return true
	}
	m.acked = seq
	m.markWritten(seq)
	for len(m.live()) > 0 && m.live()[0].Seq <= seq {
		m.popFront()
	}
	return true
}

// after appends to buf up to max messages with seq > after, marking them
// written, and reports false when after reaches back past what was forgotten.
func (m *mailbox) after(after uint64, max int, buf []Stored) ([]Stored, bool) {
	if after < m.dropped {
		return buf, false
	}
	live := m.live()
	if len(live) == 0 || live[len(live)-1].Seq <= after || max <= 0 {
		return buf, true
	}
	i := 0
	if after >= live[0].Seq {
		i = int(after - live[0].Seq + 1)
	}
	out := live[i:]
	if len(out) > max {
		out = out[:max]
	}
	m.markWritten(out[len(out)-1].Seq)
	return append(buf, out...), true
}

// depth is how many messages the mailbox holds.
func (m *mailbox) depth() int { return len(m.msgs) - m.head }
