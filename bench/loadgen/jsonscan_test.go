package loadgen

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"
)

// messageSamples are frames as the servers send them, and variations the
// scan must get right or leave to encoding/json.
var messageSamples = []string{
	// What the Switchboard broker writes.
	`{"seq":3,"v":1,"type":"message","room":"r1","from":"aa","to":"bb","payload":{"n":1,"t":2,"p":"xx"}}`,
	`{"seq":1,"v":1,"type":"welcome","room":"r1","payload":{"peer":"bb","session":"ad0d","peers":[{"peer":"aa"}],"resumed":false}}`,
	`{"seq":2,"v":1,"type":"peer-joined","room":"r1","payload":{"peer":"aa"}}`,
	`{"v":1,"type":"error","payload":{"code":"peer-unavailable","message":"no such peer"}}`,
	// What PeerJS and the bare relay send.
	`{"type":"OPEN"}`,
	`{"type":"CANDIDATE","src":"pa","dst":"pb","payload":{"n":1,"t":2,"p":"xx"}}`,
	`{"to":"b","from":"a","type":"message","payload":{"n":12,"t":-5,"p":""}}`,
	// Other key orders, spacing, nesting and values.
	` { "payload" : [1, {"a": "}]"}, "\"}"] , "type":"offer" , "seq" : 0 } `,
	`{"type":"candidate","payload":{"candidate":"candidate:1 1 udp 2122260223 198.51.100.10 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
	`{"type":"message","payload":"a \\\" b \\\\","from":"x"}`,
	`{"type":"message","payload":null,"to":"y","seq":123456789012345678}`,
	`{"type":"message","payload":true,"extra":[[],{}],"more":-1.5e+3}`,
	`{}`,
	`{"type":"bye","from":"a","from":"b"}`,
	// Left to encoding/json: escapes in decoded strings, a seq that is not
	// a plain integer, an escaped key.
	`{"type":"mess\u0061ge","from":"a\/b","payload":{}}`,
	`{"type":"message","seq":1.0}`,
	`{"type":"message","seq":1234567890123456789}`,
	`{"typ\u0065":"offer"}`,
	`{"type":null,"from":null}`,
	// Malformed.
	``,
	`[]`,
	`null`,
	`{"type":"message"`,
	`{"type":"message",}`,
	`{"type" "message"}`,
	`{"type":"message"} x`,
	`{"payload":{"a":[}]}`,
	`{"payload":"unterminated}`,
	`{,}`,
	`{"type":"message","seq":"1"}`,
}

func TestScanMessage(t *testing.T) {
	for _, names := range []*fieldNames{&switchboardFields, &peerJSFields} {
		for _, s := range messageSamples {
			checkScan(t, names, []byte(s))
		}
	}
	// The common shapes must not need the fallback.
	for _, s := range messageSamples[:13] {
		var m wireMessage
		if !scanMessage([]byte(s), &switchboardFields, &m) {
			t.Errorf("scan refused %s", s)
		}
	}
}

// checkScan checks that decodeMessage agrees with encoding/json on data,
// and that the scan, where it succeeds on valid JSON, agrees too.
func checkScan(t *testing.T, names *fieldNames, data []byte) {
	t.Helper()
	var want wireMessage
	wantErr := unmarshalMessage(data, names, &want)
	var got wireMessage
	gotErr := decodeMessage(data, names, &got)
	if (gotErr == nil) != (wantErr == nil) {
		// The scan may accept what encoding/json refuses only in the
		// values it skips; these samples are not such.
		t.Errorf("%s: decode error %v, encoding/json's %v", data, gotErr, wantErr)
		return
	}
	if gotErr == nil && !sameMessage(&got, &want) {
		t.Errorf("%s (%s): decoded %s, encoding/json %s", data, names.from, show(&got), show(&want))
	}
}

func sameMessage(a, b *wireMessage) bool {
	return bytes.Equal(a.typ, b.typ) && bytes.Equal(a.from, b.from) && bytes.Equal(a.to, b.to) &&
		a.seq == b.seq && bytes.Equal(a.payload, b.payload) && (a.payload == nil) == (b.payload == nil)
}

func show(m *wireMessage) string {
	b, _ := json.Marshal(map[string]any{"type": string(m.typ), "from": string(m.from), "to": string(m.to),
		"seq": m.seq, "payload": string(m.payload), "nil": m.payload == nil})
	return string(b)
}

// FuzzScanMessage checks that wherever the scan succeeds on valid JSON it
// reads what encoding/json reads.
func FuzzScanMessage(f *testing.F) {
	for _, s := range messageSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got wireMessage
		if !scanMessage(data, &switchboardFields, &got) || !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		var want wireMessage
		if err := unmarshalMessage(data, &switchboardFields, &want); err != nil {
			t.Fatalf("%s: the scan succeeded, encoding/json failed: %v", data, err)
		}
		if !sameMessage(&got, &want) {
			t.Fatalf("%s: scanned %s, encoding/json %s", data, show(&got), show(&want))
		}
	})
}

func TestParseNumbered(t *testing.T) {
	for _, size := range []int{1, 20, 200, 1500, 70000} {
		p := appendNumbered(nil, 123456, -987654321, size)
		var n numbered
		if !scanNumbered(p, &n) || n.N != 123456 || n.T != -987654321 {
			t.Fatalf("size %d: scanned %+v from %.40s", size, n, p)
		}
	}
	for s, want := range map[string]numbered{
		`{"t":5,"n":4}`:                 {N: 4, T: 5},
		`{"n":1,"t":2,"x":{"n":9}}`:     {N: 1, T: 2},
		`{"p":"\"n\":7","n":3}`:         {N: 3},
		`{"n":1e2,"t":2}`:               {}, // refused, as encoding/json refuses it
		` {"n" : 8 , "t" : 9 } `:        {N: 8, T: 9},
		`{"n":"1"}`:                     {},
		`{"n":99999999999999999999}`:    {},
		`{"n":1}garbage`:                {},
		`{"n":1,"t":2,"p":"\u0078x"}`:   {N: 1, T: 2},
		`{"n":-0,"t":0}`:                {},
		`{"n":12345678901234567,"t":1}`: {N: 12345678901234567, T: 1},
	} {
		got, err := parseNumbered([]byte(s))
		var ref numbered
		refErr := json.Unmarshal([]byte(s), &ref)
		if (err == nil) != (refErr == nil) || (err == nil && got != ref) {
			t.Errorf("parseNumbered(%s) = %+v, %v; encoding/json: %+v, %v", s, got, err, ref, refErr)
		}
		if err == nil && got != want {
			t.Errorf("parseNumbered(%s) = %+v, want %+v", s, got, want)
		}
	}
}

func TestScanNoAllocs(t *testing.T) {
	frame := []byte(`{"seq":3,"v":1,"type":"message","room":"r1","from":"aa","to":"bb","payload":` +
		string(appendNumbered(nil, 5, 6, 200)) + `}`)
	var pc peerCache
	allocs := testing.AllocsPerRun(100, func() {
		var m wireMessage
		if err := decodeMessage(frame, &switchboardFields, &m); err != nil {
			t.Fatal(err)
		}
		msg := pc.message(internType(m.typ), &m)
		if n, err := parseNumbered(msg.Payload); err != nil || n.N != 5 || msg.From != "aa" || msg.Type != TypeMessage {
			t.Fatalf("%+v %+v %v", msg, n, err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per message", allocs)
	}
}

func TestEachElement(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, nil, true},
		{` [ ] `, nil, true},
		{`[{"a":1}]`, []string{`{"a":1}`}, true},
		{`[{"a":"]"} , {"b":[1,2]},3]`, []string{`{"a":"]"}`, `{"b":[1,2]}`, `3`}, true},
		{`{"a":1}`, nil, false},
		{`[{"a":1}`, []string{`{"a":1}`}, false},
		{`[{"a":1};]`, []string{`{"a":1}`}, false},
		{`[`, nil, false},
	} {
		var got []string
		err := eachElement([]byte(tc.in), func(e []byte) error { got = append(got, string(e)); return nil })
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v", tc.in, got, err)
		}
	}
}
