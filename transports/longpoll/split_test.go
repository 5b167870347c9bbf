package longpoll

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
)

// FuzzSplitDeep checks splitDeep against broker.SplitArray: where that
// splits a body, splitDeep gives the same elements; where splitDeep splits
// one, each element is one JSON value (nested too deeply, perhaps) and the
// body is those elements, in order, as an array.
func FuzzSplitDeep(f *testing.F) {
	deep := strings.Repeat("[", 1200) + strings.Repeat("]", 1200)
	for _, s := range []string{
		`[]`, ` [ ] `, `[1,"a",{"b":[2]}]`, `[{"type":"ping"}, ` + deep + `, {"type":"ping"}]`,
		`[` + deep + `}]`, `[1 2]`, `[1,]`, `[1] x`, `{"a":1}`, `[{"a":[1,{"b":"]"}]}]`, `["\"]"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := splitDeep(data)
		if want, werr := broker.SplitArray(data); werr == nil {
			if err != nil || len(items) != len(want) {
				t.Fatalf("%q: splitDeep %d items, %v; SplitArray %d", data, len(items), err, len(want))
			}
			for i := range want {
				if !bytes.Equal(items[i], want[i]) {
					t.Fatalf("%q: item %d is %q, SplitArray's %q", data, i, items[i], want[i])
				}
			}
		}
		if err != nil {
			return
		}
		for _, it := range items {
			if len(it) == 0 || bytes.ContainsAny(it[:1], " \t\r\n,") {
				t.Fatalf("%q: item %q", data, it)
			}
		}
		if joined := append(append([]byte("["), bytes.Join(items, []byte(","))...), ']'); json.Valid(data) && !json.Valid(joined) {
			t.Fatalf("%q: items %q do not make an array", data, items)
		}
	})
}
