package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// decodeRefusal is one input that Decode must refuse.
type decodeRefusal struct {
	name string
	in   string
	code Code
	ref  string // the ref the error must carry ("" for none)
}

func TestDecodeRefusals(t *testing.T) {
	long := strings.Repeat("x", MaxIDLength+1)
	cases := []decodeRefusal{
		// Not a JSON object at all.
		{"empty", ``, CodeBadRequest, ""},
		{"blank", " \t\r\n", CodeBadRequest, ""},
		{"array", `[{"type":"ping"}]`, CodeBadRequest, ""},
		{"null", `null`, CodeBadRequest, ""},
		{"number", `42`, CodeBadRequest, ""},
		{"string", `"ping"`, CodeBadRequest, ""},
		{"bool", `true`, CodeBadRequest, ""},
		{"byte order mark", "\xef\xbb\xbf{\"type\":\"ping\"}", CodeBadRequest, ""},
		{"truncated", `{"type":"ping"`, CodeBadRequest, ""},
		{"trailing comma", `{"type":"ping",}`, CodeBadRequest, ""},
		{"trailing garbage", `{"type":"ping"} x`, CodeBadRequest, ""},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, CodeBadRequest, ""},
		{"single quotes", `{'type':'ping'}`, CodeBadRequest, ""},
		{"truncated with id", `{"id":"m1","type":"ping"`, CodeBadRequest, "m1"},

		// Wrong JSON types. The id is still read when it is a string.
		{"type number", `{"id":"m1","type":5}`, CodeBadRequest, "m1"},
		{"type object", `{"id":"m1","type":{}}`, CodeBadRequest, "m1"},
		{"type array", `{"id":"m1","type":["ping"]}`, CodeBadRequest, "m1"},
		{"room number", `{"id":"m1","type":"join","room":7}`, CodeBadRequest, "m1"},
		{"to number", `{"id":"m1","type":"offer","to":7}`, CodeBadRequest, "m1"},
		{"to bool", `{"id":"m1","type":"message","to":true}`, CodeBadRequest, "m1"},
		{"from number", `{"id":"m1","type":"message","from":1}`, CodeBadRequest, "m1"},
		{"id number", `{"id":5,"type":"ping"}`, CodeBadRequest, ""},
		{"id object", `{"id":{"x":1},"type":"ping"}`, CodeBadRequest, ""},
		{"id number, type wrong", `{"id":5,"type":5}`, CodeBadRequest, ""},
		{"long id, type wrong", `{"id":"` + long + `","type":5}`, CodeBadRequest, ""},

		// Missing or unknown type.
		{"no type", `{"id":"m1"}`, CodeBadRequest, "m1"},
		{"empty object", `{}`, CodeBadRequest, ""},
		{"empty type", `{"id":"m1","type":""}`, CodeBadRequest, "m1"},
		{"null type", `{"id":"m1","type":null}`, CodeBadRequest, "m1"},
		{"unknown type", `{"id":"m1","type":"shout"}`, CodeUnknownType, "m1"},
		{"upper-case type", `{"id":"m1","type":"PING"}`, CodeUnknownType, "m1"},
		{"type with space", `{"id":"m1","type":"ping "}`, CodeUnknownType, "m1"},
		{"long unknown type", `{"id":"m1","type":"` + strings.Repeat("t", 5000) + `"}`, CodeUnknownType, "m1"},

		// Types that only the broker writes.
		{"welcome", `{"id":"m1","type":"welcome"}`, CodeUnknownType, "m1"},
		{"peer-joined", `{"id":"m1","type":"peer-joined","payload":{"peer":"x"}}`, CodeUnknownType, "m1"},
		{"peer-left", `{"id":"m1","type":"peer-left","payload":{"peer":"x","reason":"leave"}}`, CodeUnknownType, "m1"},
		{"error", `{"id":"m1","type":"error","payload":{"code":"internal","message":"x"}}`, CodeUnknownType, "m1"},
		{"pong", `{"id":"m1","type":"pong"}`, CodeUnknownType, "m1"},

		// The version.
		{"v 2", `{"v":2,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		{"v 0", `{"v":0,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		{"v -1", `{"v":-1,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		{"v 1.5", `{"v":1.5,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		{"v 2 without id", `{"v":2,"type":"ping"}`, CodeUnsupportedVersion, ""},
		{"v 2 on unknown type", `{"v":2,"id":"m1","type":"shout"}`, CodeUnsupportedVersion, "m1"},
		{"v past float64", `{"v":1e400,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		{"v past float64, negative", `{"v":-1e400,"id":"m1","type":"ping"}`, CodeUnsupportedVersion, "m1"},
		// A v that is not a JSON number is a wrong JSON type: bad-request.
		{"v string", `{"v":"1","id":"m1","type":"ping"}`, CodeBadRequest, "m1"},
		{"v null", `{"v":null,"id":"m1","type":"ping"}`, CodeBadRequest, "m1"},
		{"v true", `{"v":true,"id":"m1","type":"ping"}`, CodeBadRequest, "m1"},
		{"v object", `{"v":{},"id":"m1","type":"ping"}`, CodeBadRequest, "m1"},
		{"v array", `{"v":[1],"id":"m1","type":"ping"}`, CodeBadRequest, "m1"},

		// Not UTF-8: the id answers when it can be read.
		{"invalid UTF-8 in payload", "{\"id\":\"m1\",\"type\":\"message\",\"payload\":\"\xff\"}", CodeBadRequest, "m1"},
		{"invalid UTF-8 before the id", "{\"payload\":\"\xc3\x28\",\"id\":\"m1\",\"type\":\"ping\"}", CodeBadRequest, "m1"},
		{"invalid UTF-8 in the id", "{\"id\":\"m\xff\",\"type\":\"ping\"}", CodeBadRequest, ""},
		{"invalid UTF-8 outside strings", "{\"id\":\"m1\",\xff\"type\":\"ping\"}", CodeBadRequest, "m1"},

		// The id.
		{"id too long", `{"id":"` + long + `","type":"ping"}`, CodeBadRequest, ""},
		{"id too long in bytes", `{"id":"` + strings.Repeat("é", 33) + `","type":"ping"}`, CodeBadRequest, ""},

		// to is required on offer, answer, candidate and bye.
		{"offer without to", `{"id":"m1","type":"offer","payload":{"type":"offer","sdp":"v=0"}}`, CodeBadRequest, "m1"},
		{"answer without to", `{"id":"m1","type":"answer"}`, CodeBadRequest, "m1"},
		{"candidate without to", `{"id":"m1","type":"candidate","payload":null}`, CodeBadRequest, "m1"},
		{"bye without to", `{"id":"m1","type":"bye"}`, CodeBadRequest, "m1"},
		{"offer with empty to", `{"id":"m1","type":"offer","to":""}`, CodeBadRequest, "m1"},
		{"offer with null to", `{"id":"m1","type":"offer","to":null}`, CodeBadRequest, "m1"},

		// Invalid ids in to and room.
		{"to with space", `{"id":"m1","type":"offer","to":"bo b"}`, CodeBadRequest, "m1"},
		{"to with slash", `{"id":"m1","type":"message","to":"a/b"}`, CodeBadRequest, "m1"},
		{"to with colon", `{"id":"m1","type":"message","to":"a:b"}`, CodeBadRequest, "m1"},
		{"to unicode", `{"id":"m1","type":"answer","to":"bøb"}`, CodeBadRequest, "m1"},
		{"to too long", `{"id":"m1","type":"bye","to":"` + long + `"}`, CodeBadRequest, "m1"},
		{"to with quote", `{"id":"m1","type":"message","to":"a\"b"}`, CodeBadRequest, "m1"},
		{"to with NUL", `{"id":"m1","type":"message","to":"a\u0000b"}`, CodeBadRequest, "m1"},
		{"join without room", `{"id":"m1","type":"join"}`, CodeBadRequest, "m1"},
		{"join with empty room", `{"id":"m1","type":"join","room":""}`, CodeBadRequest, "m1"},
		{"join with null room", `{"id":"m1","type":"join","room":null}`, CodeBadRequest, "m1"},
		{"join with bad room", `{"id":"m1","type":"join","room":"my room"}`, CodeBadRequest, "m1"},
		{"join with long room", `{"id":"m1","type":"join","room":"` + long + `"}`, CodeBadRequest, "m1"},
		{"join with room *", `{"id":"m1","type":"join","room":"*"}`, CodeBadRequest, "m1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := Decode([]byte(c.in), 0)
			if err == nil {
				t.Fatalf("Decode(%.80q) = %+v, want a %s refusal", c.in, env, c.code)
			}
			if env != nil {
				t.Errorf("Decode returned an envelope beside its error: %+v", env)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *Error", err, err)
			}
			if pe.Code != c.code || pe.Ref != c.ref {
				t.Errorf("Decode(%.80q): code %q ref %q (%s), want code %q ref %q", c.in, pe.Code, pe.Ref, pe.Message, c.code, c.ref)
			}
			if pe.Message == "" {
				t.Error("refusal has no message")
			}
			if len(pe.Message) > 200 {
				t.Errorf("refusal message is %d bytes long: the input is echoed", len(pe.Message))
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	in := []byte(`{"id":"m1","type":"message","payload":"0123456789"}`)
	if _, err := Decode(in, len(in)); err != nil {
		t.Fatalf("an envelope of exactly the limit was refused: %v", err)
	}
	_, err := Decode(in, len(in)-1)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("an envelope one byte over the limit: %v, want too-large", err)
	}
	// Too large is decided before parsing: no ref is promised, and the
	// input may be anything.
	if _, err := Decode(bytes.Repeat([]byte("x"), 100), 10); !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("garbage over the limit: %v, want too-large", err)
	}
	if _, err := Decode(in, 0); err != nil {
		t.Fatalf("a limit of 0 means none: %v", err)
	}
}

func TestDecodeAccepts(t *testing.T) {
	id64 := strings.Repeat("i", MaxIDLength)
	cases := []struct {
		name string
		in   string
		want Envelope
	}{
		{"join", `{"v":1,"type":"join","id":"j1","room":"demo","payload":{"peer":"alice"}}`,
			Envelope{Type: TypeJoin, ID: "j1", Room: "demo", Payload: json.RawMessage(`{"peer":"alice"}`)}},
		{"join without payload", `{"type":"join","room":"a.b_c-D9"}`,
			Envelope{Type: TypeJoin, Room: "a.b_c-D9"}},
		{"offer", `{"type":"offer","to":"bob","payload":{"type":"offer","sdp":"v=0\r\n"}}`,
			Envelope{Type: TypeOffer, To: "bob", Payload: json.RawMessage(`{"type":"offer","sdp":"v=0\r\n"}`)}},
		{"answer", `{"type":"answer","to":"bob","payload":{"type":"answer","sdp":"v=0"}}`,
			Envelope{Type: TypeAnswer, To: "bob", Payload: json.RawMessage(`{"type":"answer","sdp":"v=0"}`)}},
		{"candidate", `{"type":"candidate","to":"bob","payload":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
			Envelope{Type: TypeCandidate, To: "bob", Payload: json.RawMessage(`{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}`)}},
		{"end of candidates", `{"type":"candidate","to":"bob","payload":null}`,
			Envelope{Type: TypeCandidate, To: "bob", Payload: json.RawMessage(`null`)}},
		{"bye", `{"type":"bye","to":"bob"}`, Envelope{Type: TypeBye, To: "bob"}},
		{"message to one", `{"type":"message","to":"bob","payload":[1,2,3]}`,
			Envelope{Type: TypeMessage, To: "bob", Payload: json.RawMessage(`[1,2,3]`)}},
		{"message to all", `{"type":"message","payload":"hi"}`,
			Envelope{Type: TypeMessage, Payload: json.RawMessage(`"hi"`)}},
		{"ack", `{"type":"ack","payload":{"seq":42}}`, Envelope{Type: TypeAck, Payload: json.RawMessage(`{"seq":42}`)}},
		{"ping", `{"type":"ping","payload":{"t":1}}`, Envelope{Type: TypePing, Payload: json.RawMessage(`{"t":1}`)}},
		{"leave", `{"type":"leave"}`, Envelope{Type: TypeLeave}},
		{"v 1.0", `{"v":1.0,"type":"ping"}`, Envelope{Type: TypePing}},
		{"v 1e0", `{"v":1e0,"type":"ping"}`, Envelope{Type: TypePing}},
		{"v 10e-1", `{"v":10e-1,"type":"ping"}`, Envelope{Type: TypePing}},
		{"id of 64 bytes", `{"id":"` + id64 + `","type":"ping"}`, Envelope{Type: TypePing, ID: id64}},
		{"id is free text", `{"id":"a b/c:d é","type":"ping"}`, Envelope{Type: TypePing, ID: "a b/c:d é"}},
		{"id of 32 two-byte runes", `{"id":"` + strings.Repeat("é", 32) + `","type":"ping"}`, Envelope{Type: TypePing, ID: strings.Repeat("é", 32)}},
		{"surrounding whitespace", " \n\t{\"type\":\"ping\"}\r\n ", Envelope{Type: TypePing}},
		{"from and seq are dropped", `{"type":"message","from":"mallory","seq":99,"payload":1}`,
			Envelope{Type: TypeMessage, Payload: json.RawMessage(`1`)}},
		{"room is kept but not checked off join", `{"type":"message","room":"not a room!"}`,
			Envelope{Type: TypeMessage, Room: "not a room!"}},
		{"unknown fields are ignored", `{"type":"ping","extra":{"deep":[1,2]},"session":"s","x":null}`,
			Envelope{Type: TypePing}},
		{"nested payload", `{"type":"message","payload":{"a":{"b":[{"c":null},true,1.5e3,"\u00e9\ud83d\ude00"]}}}`,
			Envelope{Type: TypeMessage, Payload: json.RawMessage(`{"a":{"b":[{"c":null},true,1.5e3,"\u00e9\ud83d\ude00"]}}`)}},
		{"payload whitespace kept", `{"type":"message","payload": { "a" : 1 } }`,
			Envelope{Type: TypeMessage, Payload: json.RawMessage(`{ "a" : 1 }`)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := Decode([]byte(c.in), 64<<10)
			if err != nil {
				t.Fatalf("Decode(%q): %v", c.in, err)
			}
			got, want := *env, c.want
			if !bytes.Equal(got.Payload, want.Payload) || (got.Payload == nil) != (want.Payload == nil) {
				t.Errorf("payload %q (nil %v), want %q (nil %v)", got.Payload, got.Payload == nil, want.Payload, want.Payload == nil)
			}
			got.Payload, want.Payload = nil, nil
			if got.Type != want.Type || got.ID != want.ID || got.Room != want.Room || got.From != want.From ||
				got.To != want.To || got.Seq != want.Seq {
				t.Errorf("Decode(%q) = %+v, want %+v", c.in, got, want)
			}
		})
	}
}

// TestDecodeFieldNamesAreExact checks that top-level field names match
// exactly, as a JavaScript peer reads them: "Payload" or "TYPE" is an
// unknown field, which the protocol says is ignored.
func TestDecodeFieldNamesAreExact(t *testing.T) {
	env, err := Decode([]byte(`{"type":"message","payload":{"a":1},"PAYLOAD":{"b":2}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(env.Payload) != `{"a":1}` {
		t.Errorf("payload %s: an unknown field \"PAYLOAD\" replaced the payload", env.Payload)
	}
	if env, err := Decode([]byte(`{"TYPE":"ping"}`), 0); err == nil {
		t.Errorf("an envelope with only an unknown field \"TYPE\" was taken as %q; want bad-request (no type)", env.Type)
	}
}

func TestValidID(t *testing.T) {
	good := []string{"a", "Z", "0", ".", "_", "-", "alice", "peer-1.2_3", strings.Repeat("a", MaxIDLength),
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"[:64]}
	bad := []string{"", " ", "a b", "a/b", "a:b", "a@b", "a*b", "*", "é", "aé", "a\x00", "a\n", "\"", "a+b", "a%20",
		strings.Repeat("a", MaxIDLength+1), "ä", "\xff"}
	for _, s := range good {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
	// Every single byte: exactly the 65 allowed characters pass.
	n := 0
	for c := 0; c < 256; c++ {
		if ValidID(string([]byte{byte(c)})) {
			n++
		}
	}
	if n != 26+26+10+3 {
		t.Errorf("%d single bytes are valid ids, want 65", n)
	}
}

// wireOf decodes JSON written by the broker into a map of raw fields.
func wireOf(t *testing.T, data []byte) map[string]json.RawMessage {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("broker wrote invalid JSON: %s", data)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("broker wrote %s: %v", data, err)
	}
	return m
}

func TestEncodeRoundTrip(t *testing.T) {
	payloads := []struct {
		name    string
		payload json.RawMessage // nil: absent
	}{
		{"absent", nil},
		{"null", json.RawMessage(`null`)},
		{"number", json.RawMessage(`-1.5e-7`)},
		{"string", json.RawMessage(`"hello"`)},
		{"unicode", json.RawMessage(`"h\u00e9llo \ud83d\ude00 wörld \u2028"`)},
		{"raw unicode", json.RawMessage(`{"名前":"アリス","emoji":"😀"}`)},
		{"nested", json.RawMessage(`{"a":[1,{"b":{"c":[null,true,false,"x"]}}],"sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}`)},
		{"empty object", json.RawMessage(`{}`)},
		{"empty array", json.RawMessage(`[]`)},
		{"whitespace inside", json.RawMessage(`{ "a" : [ 1 , 2 ] }`)},
	}
	for _, p := range payloads {
		for _, seq := range []uint64{0, 1, 17, 1<<64 - 1} {
			env := &Envelope{Type: TypeMessage, Room: "demo", From: "alice", To: "bob", Seq: seq, Payload: p.payload}
			check := func(how string, data []byte, wantSeq uint64) {
				t.Helper()
				m := wireOf(t, data)
				if string(m["v"]) != "1" || string(m["type"]) != `"message"` || string(m["room"]) != `"demo"` ||
					string(m["from"]) != `"alice"` || string(m["to"]) != `"bob"` {
					t.Errorf("%s/%s seq %d: %s", p.name, how, seq, data)
				}
				if wantSeq == 0 {
					if _, ok := m["seq"]; ok {
						t.Errorf("%s/%s: seq 0 is written: %s", p.name, how, data)
					}
				} else {
					var got uint64
					if err := json.Unmarshal(m["seq"], &got); err != nil || got != wantSeq {
						t.Errorf("%s/%s: seq %s, want %d", p.name, how, m["seq"], wantSeq)
					}
				}
				raw, ok := m["payload"]
				if p.payload == nil {
					if ok {
						t.Errorf("%s/%s: absent payload written as %s", p.name, how, raw)
					}
					return
				}
				if !ok || !bytes.Equal(raw, p.payload) {
					t.Errorf("%s/%s: payload %s, want %s byte for byte", p.name, how, raw, p.payload)
				}
			}
			check("Encode", env.Encode(), seq)
			if seq != 0 {
				check("withSeq", newFrame(env).withSeq(seq), seq)
			}
			// Whatever the broker writes, Decode reads back (its seq and from dropped).
			back, err := Decode(env.Encode(), 0)
			if err != nil {
				t.Fatalf("%s: Decode(Encode()): %v", p.name, err)
			}
			if back.Type != env.Type || back.To != env.To || back.Room != env.Room || back.From != "" || back.Seq != 0 ||
				!bytes.Equal(back.Payload, env.Payload) {
				t.Errorf("%s: Decode(Encode()) = %+v", p.name, back)
			}
		}
	}
}

func TestEncodeOmitsEmptyFields(t *testing.T) {
	got := string((&Envelope{Type: TypePong}).Encode())
	if got != `{"v":1,"type":"pong"}` {
		t.Errorf("Encode of a bare pong = %s", got)
	}
	got = string((&Envelope{Type: TypeWelcome, Room: "r", Seq: 1, Payload: json.RawMessage(`{}`)}).Encode())
	if got != `{"seq":1,"v":1,"type":"welcome","room":"r","payload":{}}` {
		t.Errorf("Encode of a welcome = %s", got)
	}
}

func TestFrameWithSeqIsFresh(t *testing.T) {
	f := newFrame(&Envelope{Type: TypeMessage, Room: "r", From: "a", Payload: json.RawMessage(`"x"`)})
	a, b := f.withSeq(1), f.withSeq(123456789)
	if string(a) != `{"seq":1,"v":1,"type":"message","room":"r","from":"a","payload":"x"}` {
		t.Errorf("withSeq(1) = %s", a)
	}
	if string(b) != `{"seq":123456789,"v":1,"type":"message","room":"r","from":"a","payload":"x"}` {
		t.Errorf("withSeq(123456789) = %s", b)
	}
	if f.typ != TypeMessage {
		t.Errorf("frame type %q", f.typ)
	}
}

func TestErrorFrame(t *testing.T) {
	for _, e := range []*Error{
		{Code: CodeBadRequest, Message: "x", Ref: "m1"},
		{Code: CodeInternal, Message: "internal error"},
		{Code: CodeBadRequest, Message: "quote \" and \\ and \n and <html> and \u2028", Ref: "a\"b\\c"},
	} {
		data := ErrorFrame(e)
		m := wireOf(t, data)
		if _, ok := m["seq"]; ok || string(m["type"]) != `"error"` {
			t.Errorf("ErrorFrame = %s", data)
		}
		var p struct {
			Code    Code    `json:"code"`
			Message string  `json:"message"`
			Ref     *string `json:"ref"`
		}
		if err := json.Unmarshal(m["payload"], &p); err != nil {
			t.Fatal(err)
		}
		if p.Code != e.Code || p.Message != e.Message {
			t.Errorf("ErrorFrame payload %s for %+v", m["payload"], e)
		}
		if e.Ref == "" && p.Ref != nil || e.Ref != "" && (p.Ref == nil || *p.Ref != e.Ref) {
			t.Errorf("ErrorFrame ref %v for %+v", p.Ref, e)
		}
	}
}

func TestAsError(t *testing.T) {
	pe := Errorf(CodeForbidden, "no")
	if AsError(pe) != pe {
		t.Error("AsError of an *Error is not itself")
	}
	wrapped := errors.Join(errors.New("context"), pe)
	if AsError(wrapped) != pe {
		t.Error("AsError does not find a wrapped *Error")
	}
	e := AsError(errors.New("database password is hunter2"))
	if e.Code != CodeInternal || strings.Contains(e.Message, "hunter2") {
		t.Errorf("AsError of a plain error = %+v", e)
	}
}

func TestHTTPStatus(t *testing.T) {
	want := map[Code]int{
		CodeBadRequest: 400, CodeTooLarge: 413, CodeUnsupportedVersion: 400, CodeUnknownType: 400,
		CodeUnauthorized: 401, CodeForbidden: 403, CodePeerIDTaken: 409, CodePeerUnavailable: 400,
		CodeRateLimited: 429, CodeRoomFull: 409, CodeSessionExpired: 404, CodeSlowConsumer: 400, CodeInternal: 500,
		CodeShuttingDown: 503,
	}
	for c, s := range want {
		if got := c.HTTPStatus(); got != s {
			t.Errorf("%s.HTTPStatus() = %d, want %d", c, got, s)
		}
	}
}

// TestDecodeRefusesNonJSONWhitespace checks that only JSON's own whitespace
// (space, tab, CR, LF) may surround an envelope: anything else is not JSON.
func TestDecodeRefusesNonJSONWhitespace(t *testing.T) {
	for _, in := range []string{
		"\v{\"type\":\"ping\"}",
		"\f{\"type\":\"ping\"}",
		"{\"type\":\"ping\"}\u00a0", // no-break space
		"\u0085{\"type\":\"ping\"}", // next line
		"{\"type\":\"ping\"}\u3000", // ideographic space
	} {
		if env, err := Decode([]byte(in), 0); err == nil {
			t.Errorf("Decode(%q) accepted input that is not JSON: %+v", in, env)
		}
	}
}
