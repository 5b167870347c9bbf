package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Fast decoding of what the servers send. Every received message goes
// through here, so the drivers scan the objects they know (envelopes,
// PeerJS messages, bare relay frames, the workloads' numbered payloads)
// without reflection or allocation, and fall back to encoding/json for
// anything the scan does not handle: escaped strings, a number that is not
// a plain integer, a malformed object. The scan checks the structure of the
// object and of the fields it decodes; it does not check every detail of the
// values it skips (UTF-8, control characters in strings, the syntax of
// numbers and literals), which servers relay untouched from this very load
// generator.

// wireMessage is a received message as the scan finds it: its fields are
// slices of the frame.
type wireMessage struct {
	typ, from, to []byte
	seq           int64
	payload       []byte
}

// fieldNames names the fields of a protocol's messages that carry the type,
// the sender and the addressee.
type fieldNames struct {
	typ, from, to string
}

var (
	// switchboardFields are the fields of Switchboard envelopes and bare
	// relay frames.
	switchboardFields = fieldNames{"type", "from", "to"}
	// peerJSFields are the fields of PeerJS server messages.
	peerJSFields = fieldNames{"type", "src", "dst"}
)

// scanMessage scans data, a JSON object, for the fields names gives, "seq"
// and "payload", into m. It reports whether it could; if not, m is
// incomplete and the caller decodes data with encoding/json.
func scanMessage(data []byte, names *fieldNames, m *wireMessage) bool {
	*m = wireMessage{}
	s, ok := scanObject(data)
	if !ok {
		return false
	}
	for {
		key, val, more := s.next()
		if !more {
			return !s.bad
		}
		switch string(key) {
		case names.typ:
			m.typ, ok = plainString(val)
		case names.from:
			m.from, ok = plainString(val)
		case names.to:
			m.to, ok = plainString(val)
		case "seq":
			m.seq, ok = plainInt(val)
		case "payload":
			m.payload = val
		}
		if !ok {
			return false
		}
	}
}

// scanNumbered scans p, a numbered payload, for n and t.
func scanNumbered(p []byte, n *numbered) bool {
	*n = numbered{}
	s, ok := scanObject(p)
	if !ok {
		return false
	}
	for {
		key, val, more := s.next()
		if !more {
			return !s.bad
		}
		switch string(key) {
		case "n":
			n.N, ok = plainInt(val)
		case "t":
			n.T, ok = plainInt(val)
		}
		if !ok {
			return false
		}
	}
}

// parseNumbered decodes a relay or latency payload.
func parseNumbered(p []byte) (numbered, error) {
	var n numbered
	if scanNumbered(p, &n) {
		return n, nil
	}
	return unmarshalNumbered(p)
}

// unmarshalNumbered decodes a numbered payload with encoding/json.
func unmarshalNumbered(p []byte) (numbered, error) {
	n := new(numbered)
	err := json.Unmarshal(p, n)
	return *n, err
}

// objectScanner walks the members of one JSON object.
type objectScanner struct {
	data  []byte
	i     int  // where the scan is
	first bool // no member read yet
	done  bool // the scan has ended
	bad   bool // the object is malformed, or unlike what the scan handles
}

// scanObject starts scanning data, which must hold one object.
func scanObject(data []byte) (objectScanner, bool) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return objectScanner{}, false
	}
	return objectScanner{data: data, i: i + 1, first: true}, true
}

// next returns the next member's key, unquoted, and its raw value. At the
// end of the object, or at anything unexpected, it returns false; s.bad
// tells the two apart. A key with escapes counts as unexpected.
func (s *objectScanner) next() (key, val []byte, ok bool) {
	if s.done {
		return nil, nil, false
	}
	d := s.data
	i := skipSpace(d, s.i)
	if i == len(d) {
		return s.fail()
	}
	if d[i] == '}' {
		return s.end(i)
	}
	if !s.first {
		if d[i] != ',' {
			return s.fail()
		}
		i = skipSpace(d, i+1)
	}
	s.first = false
	if i == len(d) || d[i] != '"' {
		return s.fail()
	}
	k, ok := skipString(d, i)
	if !ok || bytes.IndexByte(d[i+1:k-1], '\\') >= 0 {
		return s.fail()
	}
	key = d[i+1 : k-1]
	i = skipSpace(d, k)
	if i == len(d) || d[i] != ':' {
		return s.fail()
	}
	i = skipSpace(d, i+1)
	v, ok := skipValue(d, i)
	if !ok {
		return s.fail()
	}
	s.i = v
	return key, d[i:v], true
}

// end finishes the scan at the closing brace at i: only space may follow.
func (s *objectScanner) end(i int) ([]byte, []byte, bool) {
	s.bad = skipSpace(s.data, i+1) != len(s.data)
	s.done = true
	return nil, nil, false
}

// fail stops the scan at something it does not handle.
func (s *objectScanner) fail() ([]byte, []byte, bool) {
	s.bad, s.done = true, true
	return nil, nil, false
}

// skipSpace returns the index of the first byte of d from i on that is not
// JSON white space.
func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts with the quote
// at d[i].
func skipString(d []byte, i int) (int, bool) {
	j := i + 1
	for {
		k := bytes.IndexByte(d[j:], '"')
		if k < 0 {
			return 0, false
		}
		k += j
		escapes := 0
		for b := k - 1; b > i && d[b] == '\\'; b-- {
			escapes++
		}
		if escapes%2 == 0 {
			return k + 1, true
		}
		j = k + 1
	}
}

// skipValue returns the index after the value that starts at d[i].
func skipValue(d []byte, i int) (int, bool) {
	if i == len(d) {
		return 0, false
	}
	switch c := d[i]; {
	case c == '"':
		return skipString(d, i)
	case c == '{' || c == '[':
		return skipNested(d, i)
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n':
		j := i + 1
		for j < len(d) && isLiteralByte(d[j]) {
			j++
		}
		return j, true
	}
	return 0, false
}

// isLiteralByte reports whether c may be part of a number, true, false or
// null.
func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '.' || c == '-' || c == '+' || c == 'E'
}

// skipNested returns the index after the object or array that starts at
// d[i], matching brackets outside strings.
func skipNested(d []byte, i int) (int, bool) {
	var stack [32]byte // the closing brackets awaited
	depth := 0
	for i < len(d) {
		switch c := d[i]; c {
		case '"':
			j, ok := skipString(d, i)
			if !ok {
				return 0, false
			}
			i = j
			continue
		case '{', '[':
			if depth == len(stack) {
				return 0, false
			}
			stack[depth] = c + 2 // '}' and ']' are 2 after '{' and '['
			depth++
		case '}', ']':
			if depth == 0 || stack[depth-1] != c {
				return 0, false
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		}
		i++
	}
	return 0, false
}

// plainString returns the contents of v, a JSON string without escapes.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// plainInt returns v, a JSON integer of at most 18 digits.
func plainInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 18 || len(v) > 1 && v[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// internType returns t as one of the type names the drivers know, without
// allocating, or as a new string.
func internType(t []byte) string {
	switch string(t) {
	case TypeMessage:
		return TypeMessage
	case TypeCandidate:
		return TypeCandidate
	case TypeOffer:
		return TypeOffer
	case TypeAnswer:
		return TypeAnswer
	case TypeBye:
		return TypeBye
	case TypeError:
		return TypeError
	case "welcome":
		return "welcome"
	case "OFFER":
		return "OFFER"
	case "ANSWER":
		return "ANSWER"
	case "CANDIDATE":
		return "CANDIDATE"
	case "LEAVE":
		return "LEAVE"
	case "OPEN":
		return "OPEN"
	}
	return string(t)
}

// intern returns last if it spells b, else b as a new string: a connection
// hears from the same peers over and over, so caching the last sender
// spares an allocation per message.
func intern(last string, b []byte) string {
	if string(b) == last {
		return last
	}
	return string(b)
}

// decodeMessage decodes frame, a message of the protocol whose fields names
// gives, into m: by the scan, or with encoding/json when the scan cannot.
func decodeMessage(frame []byte, names *fieldNames, m *wireMessage) error {
	if scanMessage(frame, names, m) {
		return nil
	}
	return unmarshalMessage(frame, names, m)
}

// unmarshalMessage decodes frame into m with encoding/json.
func unmarshalMessage(frame []byte, names *fieldNames, m *wireMessage) error {
	*m = wireMessage{}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(frame, &fields); err != nil {
		return err
	}
	if fields == nil {
		return fmt.Errorf("loadgen: %s is not an object", truncate(frame, 16))
	}
	var str [3]string
	for i, name := range []string{names.typ, names.from, names.to} {
		if err := json.Unmarshal(orNull(fields[name]), &str[i]); err != nil {
			return fmt.Errorf("loadgen: field %q: %w", name, err)
		}
	}
	var seq int64
	if err := json.Unmarshal(orNull(fields["seq"]), &seq); err != nil {
		return fmt.Errorf(`loadgen: field "seq": %w`, err)
	}
	*m = wireMessage{typ: []byte(str[0]), from: []byte(str[1]), to: []byte(str[2]), seq: seq, payload: fields["payload"]}
	return nil
}

// orNull returns v, or null when it is absent.
func orNull(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

// truncate returns the start of b, for an error message.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// peerCache turns received messages into Messages, reusing the sender's and
// addressee's strings while they stay the same. It belongs to the goroutine
// that receives.
type peerCache struct {
	from, to string
}

// message returns m, of type t, as a Message. Its payload stays a slice of
// the frame.
func (pc *peerCache) message(t string, m *wireMessage) Message {
	pc.from, pc.to = intern(pc.from, m.from), intern(pc.to, m.to)
	return Message{Type: t, From: pc.from, To: pc.to, Payload: m.payload}
}

// eachElement calls fn with each element of data, a JSON array, in order,
// stopping at fn's first error. A malformed array is an error.
func eachElement(data []byte, fn func(elem []byte) error) error {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return fmt.Errorf("loadgen: %s is not an array", truncate(data, 16))
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return nil
	}
	for {
		end, ok := skipValue(data, i)
		if !ok {
			return fmt.Errorf("loadgen: malformed array element at byte %d", i)
		}
		if err := fn(data[i:end]); err != nil {
			return err
		}
		i = skipSpace(data, end)
		switch {
		case i < len(data) && data[i] == ']':
			return nil
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		default:
			return fmt.Errorf("loadgen: malformed array at byte %d", i)
		}
	}
}
