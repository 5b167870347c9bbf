package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Unix(1700000000, 0)

// msg is a frame whose payload names n, so that data can be told apart.
func msg(n int) frame {
	return newFrame(&Envelope{Type: TypeMessage, Room: "r", From: "a", Payload: json.RawMessage(strconv.Itoa(n))})
}

// sized is a frame whose body is exactly size bytes.
func sized(t *testing.T, size, _ int) frame {
	t.Helper()
	base := len(newFrame(&Envelope{Type: TypeMessage, Payload: json.RawMessage(`""`)}).body)
	if size < base {
		t.Fatalf("size %d is below the smallest frame, %d", size, base)
	}
	pad := bytes.Repeat([]byte("x"), size-base)
	return newFrame(&Envelope{Type: TypeMessage, Payload: json.RawMessage(`"` + string(pad) + `"`)})
}

// box is a mailbox with its bound, as the tests below drive it.
type box struct {
	mailbox
	maxMsgs, maxSize int
}

// push pushes f within the bound and returns what was stored, and false
// when the mailbox is over its bound all the same.
func (m *box) push(f frame, _ time.Time) (Stored, bool) {
	_, slow := m.mailbox.push(f.body, m.maxMsgs, m.maxSize)
	return m.msgs[len(m.msgs)-1], !slow
}

func (m *box) pushUnbounded(f frame, _ time.Time) { m.mailbox.push(f.body, 0, 0) }

func (m *box) after(after uint64, n int) ([]Stored, bool) { return m.mailbox.after(after, n, nil) }

func seqs(es []Stored) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func wantSeqs(t *testing.T, what string, es []Stored, from, to uint64) {
	t.Helper()
	got := seqs(es)
	if len(got) != int(to-from+1) && !(to < from && len(got) == 0) {
		t.Fatalf("%s: seqs %v, want %d..%d", what, got, from, to)
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("%s: seqs %v, want %d..%d", what, got, from, to)
		}
	}
}

// checkMailbox checks the mailbox's invariants.
func checkMailbox(t *testing.T, m *box) {
	t.Helper()
	live := m.live()
	size := 0
	for i, e := range live {
		size += len(e.Body)
		if i > 0 && e.Seq != live[i-1].Seq+1 {
			t.Fatalf("live seqs are not contiguous: %v", seqs(live))
		}
	}
	if size != m.bytes {
		t.Fatalf("bytes %d, entries hold %d", m.bytes, size)
	}
	if len(live) > 0 && live[len(live)-1].Seq != m.last {
		t.Fatalf("last live seq %d, last %d", live[len(live)-1].Seq, m.last)
	}
	if len(live) > 0 && (live[0].Seq <= m.dropped || live[0].Seq <= m.acked) {
		t.Fatalf("live from %d with dropped %d acked %d", live[0].Seq, m.dropped, m.acked)
	}
	if m.depth() != len(live) {
		t.Fatalf("depth %d, live %d", m.depth(), len(live))
	}
	for _, e := range m.msgs[:m.head] {
		if e.Body != nil {
			t.Fatal("a forgotten entry still holds its data")
		}
	}
}

func TestMailboxContiguousSeqs(t *testing.T) {
	m := box{maxMsgs: 100, maxSize: 1 << 20}
	for i := 1; i <= 10; i++ {
		e, ok := m.push(msg(i), t0)
		if !ok || e.Seq != uint64(i) {
			t.Fatalf("push %d = %+v, %v", i, e, ok)
		}
		want := fmt.Sprintf(`"v":1,"type":"message","room":"r","from":"a","payload":%d}`, i)
		if string(e.Body) != want {
			t.Fatalf("entry %s, want %s", e.Body, want)
		}
	}
	checkMailbox(t, &m)
	es, ok := m.after(0, 100)
	if !ok {
		t.Fatal("after(0) failed")
	}
	wantSeqs(t, "after(0)", es, 1, 10)
	es, _ = m.after(4, 3)
	wantSeqs(t, "after(4) batch 3", es, 5, 7)
	es, ok = m.after(10, 100)
	if !ok || len(es) != 0 {
		t.Fatalf("after(last) = %v, %v", seqs(es), ok)
	}
	es, ok = m.after(50, 100)
	if !ok || len(es) != 0 {
		t.Fatalf("after(beyond last) = %v, %v", seqs(es), ok)
	}
	if m.written != 10 {
		t.Fatalf("written %d after handing out everything", m.written)
	}
}

func TestMailboxAfterMarksWritten(t *testing.T) {
	m := box{maxMsgs: 100, maxSize: 1 << 20}
	for i := 1; i <= 10; i++ {
		m.push(msg(i), t0)
	}
	m.after(0, 4)
	if m.written != 4 {
		t.Fatalf("written %d, want 4", m.written)
	}
	m.after(2, 1) // a re-read below the mark does not lower it
	if m.written != 4 {
		t.Fatalf("written %d after re-reading seq 3, want 4", m.written)
	}
	m.after(4, 100)
	if m.written != 10 {
		t.Fatalf("written %d, want 10", m.written)
	}
}

func TestMailboxAck(t *testing.T) {
	m := box{maxMsgs: 100, maxSize: 1 << 20}
	for i := 1; i <= 10; i++ {
		m.push(msg(i), t0)
	}
	if m.ack(11) {
		t.Fatal("ack beyond the last seq accepted")
	}
	if m.acked != 0 || m.depth() != 10 {
		t.Fatalf("a refused ack changed the mailbox: acked %d depth %d", m.acked, m.depth())
	}
	if !m.ack(0) || m.depth() != 10 {
		t.Fatal("ack(0) refused or forgot something")
	}
	if !m.ack(4) || m.depth() != 6 || m.acked != 4 {
		t.Fatalf("ack(4): depth %d acked %d", m.depth(), m.acked)
	}
	if m.written < 4 {
		t.Fatalf("acked 4 but written is %d", m.written)
	}
	if !m.ack(2) || m.acked != 4 || m.depth() != 6 {
		t.Fatal("an ack below an earlier one changed the mailbox")
	}
	es, ok := m.after(4, 100)
	if !ok {
		t.Fatal("after(4) failed")
	}
	wantSeqs(t, "after(4)", es, 5, 10)
	// Acknowledged messages are gone but were not dropped: asking below them
	// gives what is left, not a failure.
	es, ok = m.after(1, 100)
	if !ok {
		t.Fatal("after(1) below the acked mark failed")
	}
	wantSeqs(t, "after(1)", es, 5, 10)
	if !m.ack(10) || m.depth() != 0 || m.bytes != 0 {
		t.Fatalf("ack(10): depth %d bytes %d", m.depth(), m.bytes)
	}
	if m.ack(11) {
		t.Fatal("ack beyond last accepted on an empty mailbox")
	}
	m.push(msg(11), t0)
	es, _ = m.after(10, 100)
	wantSeqs(t, "after(10)", es, 11, 11)
	checkMailbox(t, &m)
}

func TestMailboxBoundByMessages(t *testing.T) {
	m := box{maxMsgs: 4, maxSize: 1 << 20}
	for i := 1; i <= 4; i++ {
		if _, ok := m.push(msg(i), t0); !ok {
			t.Fatalf("push %d within the bound failed", i)
		}
	}
	m.after(0, 100) // all four written to a connection, none acknowledged
	for i := 5; i <= 6; i++ {
		if _, ok := m.push(msg(i), t0); !ok {
			t.Fatalf("push %d failed although the oldest were written", i)
		}
	}
	if m.depth() != 4 || m.dropped != 2 {
		t.Fatalf("depth %d dropped %d, want 4 and 2", m.depth(), m.dropped)
	}
	if live := m.live(); live[0].Seq != 3 {
		t.Fatalf("oldest live %d, want 3: written messages must go oldest first", live[0].Seq)
	}
	for _, after := range []uint64{0, 1} {
		if es, ok := m.after(after, 100); ok {
			t.Fatalf("after(%d) needs a dropped message but gave %v", after, seqs(es))
		}
	}
	es, ok := m.after(2, 100)
	if !ok {
		t.Fatal("after(2) failed although nothing after 2 was dropped")
	}
	wantSeqs(t, "after(2)", es, 3, 6)
	checkMailbox(t, &m)
}

func TestMailboxBoundByBytes(t *testing.T) {
	const size = 100
	m := box{maxMsgs: 1000, maxSize: 3 * size}
	for i := 1; i <= 3; i++ {
		if _, ok := m.push(sized(t, size, 1), t0); !ok {
			t.Fatalf("push %d within the bound failed", i)
		}
	}
	if m.bytes != 3*size {
		t.Fatalf("bytes %d, want %d", m.bytes, 3*size)
	}
	if _, ok := m.push(sized(t, size, 1), t0); ok {
		t.Fatal("a fourth unwritten message past the byte bound was taken: want slow consumer")
	}
	m2 := box{maxMsgs: 1000, maxSize: 3 * size}
	for i := 1; i <= 3; i++ {
		m2.push(sized(t, size, 1), t0)
	}
	m2.after(0, 1) // only seq 1 written
	if _, ok := m2.push(sized(t, size, 1), t0); !ok {
		t.Fatal("push failed although the oldest was written")
	}
	if m2.dropped != 1 || m2.depth() != 3 || m2.bytes != 3*size {
		t.Fatalf("dropped %d depth %d bytes %d", m2.dropped, m2.depth(), m2.bytes)
	}
	if _, ok := m2.push(sized(t, size, 1), t0); ok {
		t.Fatal("push past the byte bound with nothing written was taken")
	}
	checkMailbox(t, &m2)
}

func TestMailboxOneHugeMessage(t *testing.T) {
	// A single message larger than the byte bound is still delivered: the
	// bound counts only when there is something to forget.
	m := box{maxMsgs: 10, maxSize: 100}
	if _, ok := m.push(sized(t, 500, 1), t0); !ok {
		t.Fatal("a lone message over the byte bound was refused")
	}
	if _, ok := m.push(msg(2), t0); ok {
		t.Fatal("a second message behind an unwritten huge one was taken")
	}
	m2 := box{maxMsgs: 10, maxSize: 100}
	m2.push(sized(t, 500, 1), t0)
	m2.after(0, 10)
	if _, ok := m2.push(msg(2), t0); !ok {
		t.Fatal("push failed although the huge message was written")
	}
	if m2.dropped != 1 || m2.depth() != 1 {
		t.Fatalf("dropped %d depth %d", m2.dropped, m2.depth())
	}
}

func TestMailboxSlowConsumer(t *testing.T) {
	m := box{maxMsgs: 4, maxSize: 1 << 20}
	m.push(msg(1), t0)
	m.push(msg(2), t0)
	m.after(0, 2) // 1 and 2 written
	for i := 3; i <= 6; i++ {
		if _, ok := m.push(msg(i), t0); !ok {
			t.Fatalf("push %d failed: written messages could have gone", i)
		}
	}
	// Now 3..6 are live and none of them written: the next push has nothing to forget.
	if _, ok := m.push(msg(7), t0); ok {
		t.Fatal("an unwritten backlog past the bound was taken: want slow consumer")
	}
	// Nothing unwritten was dropped: everything after the written mark is still there.
	es, ok := m.after(2, 100)
	if !ok {
		t.Fatal("after(2) failed")
	}
	wantSeqs(t, "after(2)", es, 3, 7)
	// The last word goes in past the bound.
	m.pushUnbounded(msg(8), t0)
	es, _ = m.after(7, 100)
	wantSeqs(t, "after(7)", es, 8, 8)
	checkMailbox(t, &m)
}

func TestMailboxAckedNeverCountsAsDropped(t *testing.T) {
	m := box{maxMsgs: 4, maxSize: 1 << 20}
	for i := 1; i <= 100; i++ {
		if _, ok := m.push(msg(i), t0); !ok {
			t.Fatalf("push %d failed", i)
		}
		if _, ok := m.after(uint64(i-1), 10); !ok {
			t.Fatalf("after(%d) failed", i-1)
		}
		if !m.ack(uint64(i)) {
			t.Fatalf("ack %d refused", i)
		}
	}
	if m.dropped != 0 {
		t.Fatalf("dropped %d although every message was acknowledged in time", m.dropped)
	}
}

// TestMailboxManyCycles pushes, reads and acknowledges many messages, with
// the compaction running many times, and checks every entry's data.
func TestMailboxManyCycles(t *testing.T) {
	m := box{maxMsgs: 1024, maxSize: 1 << 20}
	rng := rand.New(rand.NewPCG(1, 2))
	var next, read uint64 // next payload number; highest seq read
	maxLen := 0
	for next < 100_000 {
		for n := rng.IntN(40); n > 0; n-- {
			next++
			if _, ok := m.push(msg(int(next)), t0); !ok {
				t.Fatalf("push %d failed with depth %d", next, m.depth())
			}
		}
		es, ok := m.after(read, 1+rng.IntN(64))
		if !ok {
			t.Fatalf("after(%d) failed", read)
		}
		for _, e := range es {
			read++
			if e.Seq != read {
				t.Fatalf("read seq %d, want %d", e.Seq, read)
			}
			want := fmt.Sprintf(`"v":1,"type":"message","room":"r","from":"a","payload":%d}`, read)
			if string(e.Body) != want {
				t.Fatalf("entry %d holds %s", read, e.Body)
			}
		}
		if rng.IntN(3) == 0 {
			if !m.ack(read) {
				t.Fatalf("ack %d refused", read)
			}
		}
		if len(m.msgs) > maxLen {
			maxLen = len(m.msgs)
		}
		if next%997 == 0 {
			checkMailbox(t, &m)
		}
	}
	checkMailbox(t, &m)
	if m.dropped != 0 {
		t.Fatalf("dropped %d", m.dropped)
	}
	// Drain and acknowledge everything: the mailbox ends empty and small.
	for {
		es, _ := m.after(read, maxBatch)
		if len(es) == 0 {
			break
		}
		read = es[len(es)-1].Seq
	}
	if read != m.last || !m.ack(read) || m.depth() != 0 || m.bytes != 0 {
		t.Fatalf("after draining: read %d last %d depth %d bytes %d", read, m.last, m.depth(), m.bytes)
	}
	if maxLen > 4*1024 {
		t.Fatalf("the entries slice grew to %d: compaction does not keep up", maxLen)
	}
}

// TestMailboxModel runs random operations against the mailbox and a plain
// model of docs/protocol.md, section 4.
func TestMailboxModel(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		maxMsgs := 1 + rng.IntN(8)
		m := box{maxMsgs: maxMsgs, maxSize: 1 << 20}
		var (
			model   []uint64 // seqs kept
			last    uint64
			written uint64
			dropped uint64
			acked   uint64
		)
		for step := 0; step < 2000; step++ {
			switch op := rng.IntN(10); {
			case op < 5: // push
				last++
				model = append(model, last)
				wantOK := true
				for len(model) > maxMsgs {
					if model[0] > written {
						wantOK = false
						break
					}
					dropped = model[0]
					model = model[1:]
				}
				_, ok := m.push(msg(int(last)), t0)
				if ok != wantOK {
					t.Fatalf("seed %d step %d: push %d = %v, want %v", seed, step, last, ok, wantOK)
				}
				if !ok {
					// The session ends here; start another.
					m = box{maxMsgs: maxMsgs, maxSize: 1 << 20}
					model, last, written, dropped, acked = nil, 0, 0, 0, 0
				}
			case op < 8: // read
				after := written
				if rng.IntN(4) == 0 && after > 0 {
					after -= uint64(rng.IntN(int(after) + 1)) // a resume from further back
				}
				n := 1 + rng.IntN(5)
				es, ok := m.after(after, n)
				if wantOK := after >= dropped; ok != wantOK {
					t.Fatalf("seed %d step %d: after(%d) ok %v, want %v (dropped %d)", seed, step, after, ok, wantOK, dropped)
				}
				if !ok {
					continue
				}
				var want []uint64
				for _, s := range model {
					if s > after && len(want) < n {
						want = append(want, s)
					}
				}
				if fmt.Sprint(seqs(es)) != fmt.Sprint(want) && !(len(es) == 0 && len(want) == 0) {
					t.Fatalf("seed %d step %d: after(%d, %d) = %v, want %v", seed, step, after, n, seqs(es), want)
				}
				if len(want) > 0 && want[len(want)-1] > written {
					written = want[len(want)-1]
				}
			default: // ack
				seq := uint64(rng.IntN(int(last) + 2))
				ok := m.ack(seq)
				if ok != (seq <= last) {
					t.Fatalf("seed %d step %d: ack(%d) = %v with last %d", seed, step, seq, ok, last)
				}
				if ok && seq > acked {
					acked = seq
					if seq > written {
						written = seq
					}
					for len(model) > 0 && model[0] <= seq {
						model = model[1:]
					}
				}
			}
			if m.depth() != len(model) {
				t.Fatalf("seed %d step %d: depth %d, model %v", seed, step, m.depth(), model)
			}
		}
		checkMailbox(t, &m)
	}
}
