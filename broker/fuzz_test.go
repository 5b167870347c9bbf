package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// protocolCodes are the error codes of docs/protocol.md, section 2.
var protocolCodes = map[Code]bool{
	CodeBadRequest: true, CodeTooLarge: true, CodeUnsupportedVersion: true, CodeUnknownType: true,
	CodeUnauthorized: true, CodeForbidden: true, CodePeerIDTaken: true, CodePeerUnavailable: true,
	CodeRateLimited: true, CodeRoomFull: true, CodeSessionExpired: true, CodeSlowConsumer: true, CodeInternal: true,
}

// envelopeSeeds are inputs for the envelope fuzz targets: valid envelopes of
// every type and malformed ones.
var envelopeSeeds = []string{
	`{"v":1,"type":"join","id":"j1","room":"demo","payload":{"peer":"alice","meta":{"name":"Alice"}}}`,
	`{"type":"join","room":"demo","payload":{"resume":{"session":"0123456789abcdef0123456789abcdef","last_seq":17}}}`,
	`{"type":"join","room":"demo","payload":{"token":"eyJhbGciOiJIUzI1NiJ9.e30.x","peer":"bob"}}`,
	`{"type":"join","room":"demo","payload":null}`,
	`{"type":"join","room":"demo","payload":[]}`,
	`{"type":"join","room":"demo","payload":{"peer":5}}`,
	`{"type":"join","room":"demo","payload":{"meta":"not an object"}}`,
	`{"type":"join","room":"demo","payload":{"resume":{"session":1}}}`,
	`{"type":"offer","to":"bob","id":"o1","payload":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}`,
	`{"type":"answer","to":"alice","payload":{"type":"answer","sdp":"v=0"}}`,
	`{"type":"candidate","to":"bob","payload":{"candidate":"candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
	`{"type":"candidate","to":"bob","payload":null}`,
	`{"type":"bye","to":"bob"}`,
	`{"type":"message","payload":{"chat":"hi \u00e9 \ud83d\ude00"}}`,
	`{"type":"message","to":"bob","payload":[1,2.5,-3e10,true,false,null,"x",{"y":[]}]}`,
	`{"type":"ack","payload":{"seq":42}}`,
	`{"type":"ping","payload":{"t":1700000000000}}`,
	`{"type":"leave"}`,
	`{"v":2,"type":"ping","id":"x"}`,
	`{"v":"1","type":"ping"}`,
	`{"v":1.0,"type":"ping"}`,
	`{"type":"welcome","id":"w"}`,
	`{"type":"pong"}`,
	`{"type":5,"id":"t"}`,
	`{"id":"` + strings.Repeat("x", 65) + `","type":"ping"}`,
	`{"type":"offer"}`,
	`{"type":"message","to":"bad id"}`,
	`{"type":"message","room":"a\"b","from":"x\"y","payload":1}`,
	`[{"type":"ping"}]`,
	`null`,
	``,
	`{`,
	`{"type":"ping",}`,
	"\xff\xfe{\"type\":\"ping\"}",
	`{"type":"message","payload":"\xff\xfe invalid utf-8"}`,
	`{"type":"message","payload":{"a":1},"payload":{"b":2}}`,
	`{"type":"message","payload":1}{"type":"ping"}`,
	`{"typ\u0065":"ping"}`,
	`{"type":"ping","type":"leave","id":"a","id":"b"}`,
	`{"type":"ping","id":null}`,
	`{"type":"message","to":"b\u006fb"}`,
	`{"type":"message","payload":"\ud800\u0041\/"}`,
	`{"type":"message","payload":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}`,
	`{"type":"message","payload":-0.0e+00}`,
	`{"type":"message","payload":01}`,
	"{\"type\":\"ping\"}\u00a0",
	"\f{\"type\":\"ping\"}",
}

func FuzzDecode(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 64)
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 0 {
			max = -max
		}
		env, err := Decode(data, max)
		compareReference(t, data, max, env, err)
		if err != nil {
			checkRefusal(t, data, err)
			return
		}
		if max > 0 && len(data) > max {
			t.Fatalf("accepted %d bytes over a limit of %d", len(data), max)
		}
		if env.Type == "" || env.From != "" || env.Seq != 0 {
			t.Fatalf("accepted envelope %+v", env)
		}
		if len(env.ID) > MaxIDLength {
			t.Fatalf("accepted an id of %d bytes", len(env.ID))
		}
		switch env.Type {
		case TypeJoin, TypeOffer, TypeAnswer, TypeCandidate, TypeBye, TypeMessage, TypeAck, TypePing, TypeLeave:
		default:
			t.Fatalf("accepted type %q", env.Type)
		}
		if env.To != "" && !ValidID(env.To) {
			t.Fatalf("accepted to %q", env.To)
		}
		if env.Type == TypeJoin && !ValidID(env.Room) {
			t.Fatalf("accepted a join to room %q", env.Room)
		}
		if env.Payload != nil && !json.Valid(env.Payload) {
			t.Fatalf("payload %q is not valid JSON", env.Payload)
		}

		// Relay it as the broker does: room and from stamped, then a seq.
		env.Room, env.From = "room", "alice"
		out := newFrame(env).withSeq(7)
		var w struct {
			Seq     uint64          `json:"seq"`
			V       int             `json:"v"`
			Type    string          `json:"type"`
			Room    string          `json:"room"`
			From    string          `json:"from"`
			To      string          `json:"to"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("relayed %q as invalid JSON %q: %v", data, out, err)
		}
		if w.Seq != 7 || w.V != 1 || w.Type != env.Type || w.Room != "room" || w.From != "alice" || w.To != env.To {
			t.Fatalf("relayed %q as %q", data, out)
		}
		if (w.Payload == nil) != (env.Payload == nil) {
			t.Fatalf("payload presence changed: %q became %q", env.Payload, w.Payload)
		}
		if env.Payload != nil && !bytes.Equal(compact(t, w.Payload), compact(t, env.Payload)) {
			t.Fatalf("payload %q relayed as %q", env.Payload, w.Payload)
		}
		if enc := env.Encode(); !json.Valid(enc) {
			t.Fatalf("Encode wrote invalid JSON %q", enc)
		}
	})
}

// checkRefusal checks the error Decode refused data with.
func checkRefusal(t *testing.T, data []byte, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("refusal %v (%T) is not a *Error", err, err)
	}
	if pe.Message == "" || !protocolCodes[pe.Code] {
		t.Fatalf("refusal %+v", pe)
	}
	if len(pe.Ref) > MaxIDLength {
		t.Fatalf("ref of %d bytes", len(pe.Ref))
	}
	if !json.Valid(ErrorFrame(pe)) {
		t.Fatalf("error frame %q is not valid JSON", ErrorFrame(pe))
	}
	// A ref must be the input's own id.
	if pe.Ref != "" {
		var w struct{ ID string }
		if json.Unmarshal(data, &w) != nil && !bytes.Contains(data, []byte(`"id"`)) {
			t.Fatalf("ref %q from input without an id", pe.Ref)
		}
	}
}

func compact(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatalf("compact %q: %v", data, err)
	}
	return b.Bytes()
}

func FuzzParseJoin(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"type":"join","room":"r","payload":{"peer":"p","meta":{"a":"` + strings.Repeat("m", 1100) + `"}}}`))
	f.Add([]byte(`{"type":"join","room":"r","payload":{"meta":null,"resume":null,"token":""}}`))
	f.Add([]byte(`{"type":"join","room":"r","payload":{"meta":[1]}}`))
	f.Add([]byte(`{"type":"join","room":"r","payload":{"resume":{"session":"","last_seq":0}}}`))
	f.Add([]byte(`{"type":"join","room":"r","payload":{"peer":"bad peer"}}`))
	f.Add([]byte(`{"type":"join","room":"r","payload":{"meta": {"x":1} }}`))

	b := New(Options{
		NodeID:       "fuzz",
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ResumeWindow: 20 * time.Millisecond,
		MaxSessions:  1 << 30,
	})
	f.Cleanup(func() { b.Close(ReasonKicked) })
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Decode(data, 64<<10)
		if err != nil {
			return
		}
		req, err := ParseJoin(env, "fuzz")
		if env.Type != TypeJoin {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeBadRequest || pe.Ref != env.ID {
				t.Fatalf("ParseJoin of a %s: %v", env.Type, err)
			}
			return
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeBadRequest || pe.Ref != env.ID || pe.Message == "" {
				t.Fatalf("ParseJoin refusal: %#v", err)
			}
			return
		}
		if req.Room != env.Room || req.Transport != "fuzz" {
			t.Fatalf("ParseJoin(%q) = %+v", data, req)
		}
		// Whatever ParseJoin gives, Join either admits or refuses with a protocol code.
		joined, err := b.Join(context.Background(), req)
		if err != nil {
			pe := AsError(err)
			if !protocolCodes[pe.Code] || pe.Code == CodeInternal || pe.Message == "" {
				t.Fatalf("Join(%+v): %v", req, err)
			}
			return
		}
		s := joined.Session
		if !json.Valid(joined.Welcome) || !ValidID(s.Peer()) || s.Room() != req.Room {
			t.Fatalf("Join(%+v) = welcome %q, peer %q", req, joined.Welcome, s.Peer())
		}
		if req.Peer != "" && s.Peer() != req.Peer {
			t.Fatalf("asked for peer %q, got %q", req.Peer, s.Peer())
		}
		var w struct {
			Seq     uint64
			Payload struct {
				Peer    string
				Session string
				Resumed bool
			}
		}
		if err := json.Unmarshal(joined.Welcome, &w); err != nil || w.Seq != 1 || w.Payload.Peer != s.Peer() ||
			w.Payload.Session != s.Secret() || w.Payload.Resumed {
			t.Fatalf("welcome %q", joined.Welcome)
		}
		s.Close(ReasonLeave)
	})
}

// compareReference checks Decode's answer against referenceDecode's.
func compareReference(t *testing.T, data []byte, max int, env *Envelope, err error) {
	t.Helper()
	want, code, ref, refKnown := referenceDecode(data, max)
	if want != nil {
		if err != nil {
			t.Fatalf("Decode(%q) refused valid input: %v", data, err)
		}
		if env.Type != want.Type || env.ID != want.ID || env.Room != want.Room || env.To != want.To ||
			!bytes.Equal(env.Payload, want.Payload) || (env.Payload == nil) != (want.Payload == nil) {
			t.Fatalf("Decode(%q) = %+v (payload %q), want %+v (payload %q)", data, env, env.Payload, want, want.Payload)
		}
		return
	}
	if err == nil {
		t.Fatalf("Decode(%q) accepted input that is refused with %s", data, code)
	}
	pe := AsError(err)
	if pe.Code != code || refKnown && pe.Ref != ref {
		t.Fatalf("Decode(%q) refused with %s ref %q (%s), want %s ref %q", data, pe.Code, pe.Ref, pe.Message, code, ref)
	}
}

// referenceDecode is a slow, plain reading of docs/protocol.md, section 1,
// on top of encoding/json, to check Decode against: field names match
// exactly (a name written with escapes is an unknown field); the last of two
// fields of one name counts; string fields must be JSON strings; nesting is
// at most 1000 deep. It returns the envelope, or the refusal's code and ref
// (refKnown false: any ref is fine, the input being no JSON).
func referenceDecode(data []byte, max int) (env *Envelope, code Code, ref string, refKnown bool) {
	if max > 0 && len(data) > max {
		return nil, CodeTooLarge, "", true
	}
	data = bytes.Trim(data, " \t\r\n") // JSON white space only, as Decode does
	if len(data) == 0 || data[0] != '{' || !utf8.Valid(data) {
		return nil, CodeBadRequest, "", true
	}
	if !json.Valid(data) || depth(data) > 1000 {
		return nil, CodeBadRequest, "", false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	_, _ = dec.Token() // {
	var (
		w       wireEnvelope
		typeErr bool
	)
	for dec.More() {
		start := dec.InputOffset()
		tok, _ := dec.Token()
		key := tok.(string)
		rawKey := bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n,")
		var v json.RawMessage
		_ = dec.Decode(&v)
		if bytes.IndexByte(rawKey, '\\') >= 0 {
			continue
		}
		var dst *string
		switch key {
		case "v":
			w.V = v
		case "payload":
			w.Payload = v
		case "type":
			dst = &w.Type
		case "id":
			dst = &w.ID
		case "room":
			dst = &w.Room
		case "from":
			dst = &w.From
		case "to":
			dst = &w.To
		}
		if dst != nil {
			if v[0] != '"' {
				typeErr = true
				continue
			}
			_ = json.Unmarshal(v, dst)
		}
	}
	if len(w.ID) <= MaxIDLength {
		ref = w.ID
	}
	if typeErr {
		return nil, CodeBadRequest, ref, true
	}
	if w.V != nil {
		n, err := strconv.ParseFloat(string(w.V), 64)
		if err != nil || w.V[0] == '"' {
			return nil, CodeBadRequest, ref, true
		}
		if n != 1 {
			return nil, CodeUnsupportedVersion, ref, true
		}
	}
	if len(w.ID) > MaxIDLength {
		return nil, CodeBadRequest, ref, true
	}
	switch w.Type {
	case "":
		return nil, CodeBadRequest, ref, true
	case TypeOffer, TypeAnswer, TypeCandidate, TypeBye:
		if w.To == "" {
			return nil, CodeBadRequest, ref, true
		}
	case TypeMessage, TypeJoin, TypeAck, TypePing, TypeLeave:
	default:
		return nil, CodeUnknownType, ref, true
	}
	if w.To != "" && !ValidID(w.To) || w.Type == TypeJoin && !ValidID(w.Room) {
		return nil, CodeBadRequest, ref, true
	}
	return &Envelope{Type: w.Type, ID: w.ID, Room: w.Room, To: w.To, Payload: w.Payload}, "", "", true
}

// depth is how deeply the JSON value data nests.
func depth(data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	d, most := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return most
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			most = max(most, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

// FuzzSplitArray checks SplitArray against encoding/json on valid UTF-8.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, ` [ {"type":"ping"} , {"a":[1,{"b":"]"}]} ] `, `[1,2`, `[1,]`, `[1] x`, `{"a":1}`, `["\u00e9",null,true,-1.5e3]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		if bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) >= maxDepth {
			return // past the broker's nesting limit, which encoding/json has not
		}
		got, err := SplitArray(data)
		var want []json.RawMessage
		werr := json.Unmarshal(data, &want)
		if werr == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
			if err != nil {
				t.Fatalf("%q: SplitArray failed (%v), encoding/json did not", data, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%q: %d elements, encoding/json %d", data, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%q: element %d is %q, encoding/json %q", data, i, got[i], want[i])
				}
			}
		} else if err == nil {
			t.Fatalf("%q: SplitArray accepted what encoding/json refused (%v)", data, werr)
		}
		if ValidJSON(data) != json.Valid(data) {
			t.Fatalf("%q: ValidJSON %v, json.Valid %v", data, ValidJSON(data), json.Valid(data))
		}
	})
}
