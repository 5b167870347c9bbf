package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
)

func TestParseInbound(t *testing.T) {
	cases := []struct {
		in         string
		ok         bool
		typ, reply string
		session    string
		hasSession bool
		resume     bool
	}{
		{`{"type":"join","room":"r","payload":{"peer":"a","reply":"x:reply:1"}}`, true, "join", "x:reply:1", "", false, false},
		{`{"type":"join","room":"r","payload":{"reply":"c","resume":{"session":"s","last_seq":3}}}`, true, "join", "c", "", false, true},
		{`{"type":"join","room":"r","payload":"reply"}`, true, "join", "", "", false, false},
		{`{"type":"join","payload":{"reply":7}}`, true, "join", "", "", false, false},
		{`{"type":"offer","session":"abc","to":"b"}`, true, "offer", "", "abc", true, false},
		{`{"type":7,"session":"abc"}`, true, "", "", "abc", true, false},
		{`{"session":null}`, true, "", "", "", true, false},
		{`{"session":["abc"]}`, true, "", "", "", true, false},
		{" \n{\"type\":\"ping\"}", true, "ping", "", "", false, false},
		{`not json`, false, "", "", "", false, false},
		{`"str"`, false, "", "", "", false, false},
		{`{"type":"ping",}`, false, "", "", "", false, false},
		{``, false, "", "", "", false, false},
	}
	for _, c := range cases {
		in, ok := parseInbound([]byte(c.in))
		if ok != c.ok || in.typ != c.typ || in.reply != c.reply || in.session != c.session ||
			in.hasSession != c.hasSession || (in.resume != nil) != c.resume {
			t.Errorf("%s: got %+v %v", c.in, in, ok)
		}
	}
}

func TestReplyChannels(t *testing.T) {
	k := newKeys("sb:")
	for ch, want := range map[string]bool{
		"sb:reply:1": true, "sb:reply:a:b": true,
		"sb:in": false, "sb:events": false, "sb:events:node1": false, "sb:confirm:n": false,
		"sb:peer:r:a": false, "sb:reply:": false, "sb:replyx": false, "other:reply:1": false, "app": false, "": false,
		"sb:reply:" + strings.Repeat("x", 300): false,
	} {
		if k.replyOK(ch) != want {
			t.Errorf("replyOK(%q) = %v", ch, !want)
		}
	}
	if k.peer("r", "a") != "sb:peer:r:a" || k.in() != "sb:in" || newKeys("").in() != "switchboard:in" {
		t.Error("channel names")
	}
}

// An envelope nested deeper than encoding/json reads still yields its
// session, so that its sender is told it was refused.
func TestParseInboundDeep(t *testing.T) {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	cases := []struct {
		in         string
		ok         bool
		typ, room  string
		session    string
		hasSession bool
	}{
		{`{"type":"message","payload":` + deep + `,"session":"abc","room":"r"}`, true, "message", "r", "abc", true},
		{`{"session":{"x":` + deep + `},"type":"ping"}`, true, "ping", "", "", true},
		{`{"type":"message","payload":` + deep + `}`, true, "message", "", "", false},
		{`{"type":"message","payload":` + deep + `,}`, false, "", "", "", false},
		{`{"type":"message","payload":` + deep[:30000] + `}`, false, "", "", "", false},
		{`{"type":"message","payload":` + deep + `} x`, false, "", "", "", false},
	}
	for _, c := range cases {
		in, ok := parseInbound([]byte(c.in))
		if ok != c.ok || in.typ != c.typ || in.room != c.room || in.session != c.session || in.hasSession != c.hasSession {
			t.Errorf("%.60s…: got %+v %v", c.in, in, ok)
		}
	}
}

// FuzzParseInbound checks that the first read of a message never panics,
// and agrees with the broker's own decoder on what is a join.
func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"r","payload":{"peer":"a","reply":"x","resume":{"session":"s","last_seq":1}}}`,
		`{"type":"message","session":"0123","payload":null}`,
		`{"type":"join","payload":[]}`,
		`{"Session":"x","TYPE":"join"}`,
		`{"type":"join","type":"offer"}`,
		`[]`, `{`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, ok := parseInbound(data)
		if !ok {
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
			t.Fatalf("took %q", data)
		}
		if env, err := broker.Decode(data, 0); err == nil && (env.Type == broker.TypeJoin) != (in.typ == broker.TypeJoin) {
			t.Fatalf("%q: broker reads type %q, the transport %q", data, env.Type, in.typ)
		}
		if in.reply != "" && in.typ != broker.TypeJoin {
			t.Fatalf("%q: a reply outside a join", data)
		}
		if in.hasSession && json.Valid(data) {
			var m map[string]json.RawMessage
			if json.Unmarshal(data, &m) == nil && len(m) == 0 {
				t.Fatalf("%q: a session in an empty object", data)
			}
		}
	})
}

// FuzzParseDeep checks parseDeep, which reads what encoding/json cannot,
// against encoding/json on what it can: the same type, session and room.
func FuzzParseDeep(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","session":"abc","room":"r","payload":[[{"x":"]"}]]}`,
		`{"session":null,"type":7}`, `{"session":{"a":[1]}}`, `{"type":"a","type":"b"}`,
		`{}`, `[]`, `{"a":1,}`, `{"a":1} x`, `{"a":"\"}"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, ok := parseDeep(data)
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil || len(m) == 0 {
			return
		}
		for k := range m {
			if k != strings.ToLower(k) || strings.Count(string(data), `"`+k+`"`) > 1 {
				return // encoding/json matches keys without case, and keeps the last of two
			}
		}
		if !ok {
			t.Fatalf("%q: encoding/json reads it, parseDeep does not", data)
		}
		str := func(k string) string {
			var s string
			_ = json.Unmarshal(m[k], &s)
			return s
		}
		_, has := m["session"]
		if in.typ != str("type") || in.session != str("session") || in.room != str("room") || in.hasSession != has {
			t.Fatalf("%q: parseDeep %+v", data, in)
		}
	})
}
