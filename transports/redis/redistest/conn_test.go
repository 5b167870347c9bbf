package redistest

import (
	"encoding/json"
	"testing"
)

func TestWithSession(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"ping"}`:    `{"session":"S","type":"ping"}`,
		`{}`:                 `{"session":"S"}`,
		` { } `:              `{"session":"S"}`,
		`not json`:           `{"session":"S"}`,
		`"str"`:              `{"session":"S"}`,
		"{\n\"type\":\"x\"}": `{"session":"S","type":"x"}`,
	} {
		if got := string(withSession([]byte(in), "S")); got != want {
			t.Errorf("withSession(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzWithSession checks that a JSON object stays one, with the session
// added and every other field kept.
func FuzzWithSession(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{}`, ` {"a":[1,{}]} `, `{"session":"other"}`, `[]`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := withSession(data, "0123abcd")
		var before map[string]json.RawMessage
		if json.Unmarshal(data, &before) != nil || before == nil {
			return
		}
		var after map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("%q became %q: %v", data, out, err)
		}
		if _, had := before["session"]; !had && string(after["session"]) != `"0123abcd"` {
			t.Fatalf("%q became %q", data, out)
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				t.Fatalf("%q lost %s: %q", data, k, out)
			}
		}
	})
}
