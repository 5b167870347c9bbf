package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// TestSessionOutlivesItsNode: with a Store, a session whose node dies
// resumes on another node and gets exactly what it missed, including what
// was sent to it after its node died; its peers saw no peer-left.
func TestSessionOutlivesItsNode(t *testing.T) {
	bp, st := &broker.MemoryBackplane{}, &broker.MemoryStore{}
	node := func(id string) *broker.Broker {
		b := broker.New(broker.Options{NodeID: id, Backplane: bp, Store: st, Logger: quietLogger(), Rate: -1})
		t.Cleanup(func() { b.Close(broker.ReasonKicked) })
		return b
	}
	n1, n2 := node("n1"), node("n2")
	ctx := context.Background()
	bob, err := n1.Join(ctx, broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := n2.Join(ctx, broker.JoinRequest{Room: "r", Peer: "alice", Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	att := bob.Session.Attach()
	send := func(i int) {
		t.Helper()
		if err := alice.Session.HandleRaw(ctx, []byte(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d"}}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		send(i)
	}
	// bob reads the first two, then its node dies with no goodbye.
	var got []string
	after := bob.After
	for len(got) < 3 { // peer-joined of alice, then two candidates
		frames, last, err := att.Take(after)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if len(got) < 3 {
				got = append(got, string(f))
				after++
			}
		}
		_ = last
	}
	if !strings.Contains(got[2], `"c1"`) {
		t.Fatalf("before the crash bob read %q", got)
	}
	n1.Close(broker.ReasonKicked) // as if killed: the session is not ended
	for i := 4; i < 7; i++ {
		send(i)
	}
	resumed, err := n2.Join(ctx, broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test",
		Resume: &broker.Resume{Session: bob.Session.ID(), LastSeq: after}})
	if err != nil {
		t.Fatalf("resume on n2: %v", err)
	}
	if !resumed.Resumed || resumed.After != after {
		t.Fatalf("resumed %+v", resumed)
	}
	att2 := resumed.Session.Attach()
	frames, _, err := att2.Take(after)
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, f := range frames {
		text = append(text, string(f))
	}
	all := strings.Join(text, "\n")
	for i := 2; i < 7; i++ {
		if !strings.Contains(all, fmt.Sprintf(`"c%d"`, i)) {
			t.Fatalf("after resume, c%d is missing:\n%s", i, all)
		}
	}
	if len(frames) != 5 || strings.Contains(all, `"c1"`) {
		t.Fatalf("after resume bob got %d frames:\n%s", len(frames), all)
	}
	// alice saw no peer-left.
	aatt := alice.Session.Attach()
	af, _, _ := aatt.Take(alice.After)
	for _, f := range af {
		if strings.Contains(string(f), "peer-left") {
			t.Fatalf("alice saw %s", f)
		}
	}
}
