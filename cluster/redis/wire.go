package redis

import (
	"encoding/binary"
	"errors"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Wakes on the backplane. A message relayed across nodes is told of to the
// other nodes with a wake that carries it, one per message, so their
// encoding is what each node spends most on after the message itself:
// rather than as JSON (the body in base64), a wake travels in a compact
// form of its own, and the wakes a node publishes at the same moment travel
// as one PUBLISH. A payload in this form starts with wakeMark, which no
// JSON text does, followed by one or more records, each its length
// (uvarint) and then node, room, to, session and type (each a uvarint
// length and its bytes), seq (uvarint) and the body (the rest).
//
// Nodes that predate it cannot read it (they log it as unreadable): the
// message stays in the store, and such a node hands it out at the session's
// next wake it can read, or when it resyncs. Upgrade a cluster's nodes
// together.

// wakeMark starts a payload of wakes.
const wakeMark = 0x01

// errBadWake is the error of a payload of wakes that cannot be read.
var errBadWake = errors.New("redis: unreadable wake on the backplane")

// appendWake appends ev (a wake) to buf as one record, after the mark when
// buf is empty.
func appendWake(buf []byte, ev broker.Event) []byte {
	if len(buf) == 0 {
		buf = append(buf, wakeMark)
	}
	n := len(ev.Node) + len(ev.Room) + len(ev.To) + len(ev.Session) + len(ev.Type) + 5*binary.MaxVarintLen64 + binary.MaxVarintLen64 + len(ev.Body)
	rec := make([]byte, 0, n)
	for _, s := range []string{ev.Node, ev.Room, ev.To, ev.Session, ev.Type} {
		rec = binary.AppendUvarint(rec, uint64(len(s)))
		rec = append(rec, s...)
	}
	rec = binary.AppendUvarint(rec, ev.Seq)
	rec = append(rec, ev.Body...)
	buf = binary.AppendUvarint(buf, uint64(len(rec)))
	return append(buf, rec...)
}

// readWakes calls fn with each wake of payload, which starts with wakeMark.
func readWakes(payload string, fn func(broker.Event)) error {
	p := payload[1:]
	for len(p) > 0 {
		n, k := uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return errBadWake
		}
		rec := p[k : k+int(n)]
		p = p[k+int(n):]
		var f [5]string
		for i := range f {
			l, k := uvarint(rec)
			if k <= 0 || l > uint64(len(rec)-k) {
				return errBadWake
			}
			f[i], rec = rec[k:k+int(l)], rec[k+int(l):]
		}
		seq, k := uvarint(rec)
		if k <= 0 {
			return errBadWake
		}
		fn(broker.Event{Kind: broker.EventWake, Node: f[0], Room: f[1], To: f[2], Session: f[3], Type: f[4], Seq: seq, Body: []byte(rec[k:])})
	}
	return nil
}

// uvarint is binary.Uvarint on a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -1
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
