package redis

import (
	"reflect"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
)

// TestWakesRoundTrip: wakes joined into one payload are read back as they
// were, in order.
func TestWakesRoundTrip(t *testing.T) {
	evs := []broker.Event{
		{Kind: broker.EventWake, Node: "n1", Room: "room", To: "bob", Session: "s3cr3t", Type: "offer", Seq: 1, Body: []byte(`"type":"offer","payload":{"sdp":"v=0\r\n"}}`)},
		{Kind: broker.EventWake, Node: "n1", Room: "r", To: "é", Session: "x", Seq: 1 << 40},
		{Kind: broker.EventWake, Node: "n2", Room: "", To: "", Session: "", Type: "message", Seq: 0, Body: []byte{0, 1, 0x80, 0xff}},
	}
	var buf []byte
	for _, ev := range evs {
		buf = appendWake(buf, ev)
	}
	if buf[0] != wakeMark {
		t.Fatalf("payload starts with %#x", buf[0])
	}
	var got []broker.Event
	if err := readWakes(string(buf), func(ev broker.Event) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if evs[i].Body == nil {
			evs[i].Body = []byte{}
		}
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, evs)
	}
}

// FuzzReadWakes: no payload makes readWakes panic, and what it reads from a
// payload it accepts is read back the same once written again.
func FuzzReadWakes(f *testing.F) {
	f.Add(string(appendWake(nil, broker.Event{Node: "n", Room: "r", To: "t", Session: "s", Type: "offer", Seq: 7, Body: []byte("{}")})))
	f.Add("\x01")
	f.Add("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Add("\x01\x05\x01a\x01b")
	f.Fuzz(func(t *testing.T, payload string) {
		if len(payload) == 0 || payload[0] != wakeMark {
			return
		}
		var evs []broker.Event
		if err := readWakes(payload, func(ev broker.Event) { evs = append(evs, ev) }); err != nil || len(evs) == 0 {
			return
		}
		var again []byte
		for _, ev := range evs {
			again = appendWake(again, ev)
		}
		var back []broker.Event
		if err := readWakes(string(again), func(ev broker.Event) { back = append(back, ev) }); err != nil || !reflect.DeepEqual(back, evs) {
			t.Fatalf("%q read, written and read again: %v %+v, want %+v", payload, err, back, evs)
		}
	})
}
