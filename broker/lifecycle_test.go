package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// goroutineIDs returns the stacks of the live goroutines by id.
func goroutineStacks() map[int]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[int]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(g), " [")
		id, err := strconv.Atoi(strings.TrimPrefix(head, "goroutine "))
		if err == nil {
			out[id] = string(g)
		}
	}
	return out
}

// checkNoBrokerGoroutines fails t if a goroutine that runs the broker's code
// and was started after the goroutine with id since is still there within
// a few seconds. The leak check is written here rather than taken from a
// library: goroutine ids only grow, so goroutines of tests before this one
// are told apart without a list of known ones.
func checkNoBrokerGoroutines(t *testing.T, since int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for id, stack := range goroutineStacks() {
			if id > since && strings.Contains(stack, "switchboard/broker.") && !strings.Contains(stack, "testing.tRunner") {
				left = append(left, stack)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the broker outlive Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func maxGoroutineID() int {
	m := 0
	for id := range goroutineStacks() {
		m = max(m, id)
	}
	return m
}

// TestCloseWaitsForItsGoroutines: Close returns only once every goroutine
// the broker started has ended (the backplane subscriber, the touch loop
// of a shared store, a slow consumer's end, take-overs, timers that fired),
// and a timer that fires after Close does nothing. On one node, and on two
// that share a store.
func TestCloseWaitsForItsGoroutines(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		since := maxGoroutineID()
		b := broker.New(broker.Options{Logger: quietLogger(), Rate: -1, MailboxMessages: 8,
			ResumeWindow: 20 * time.Millisecond, OfflineHold: 20 * time.Millisecond})
		ctx := context.Background()
		j := func(peer string) *broker.Session {
			jn, err := b.Join(ctx, broker.JoinRequest{Room: "r", Peer: peer, Transport: "test"})
			if err != nil {
				t.Fatal(err)
			}
			return jn.Session
		}
		alice, bob := j("alice"), j("bob")
		bob.Attach() // never reads: it becomes a slow consumer
		for i := range 20 {
			_ = alice.HandleRaw(ctx, []byte(fmt.Sprintf(`{"type":"message","payload":%d}`, i)))
			_ = alice.HandleRaw(ctx, []byte(`{"type":"message","to":"ghost"}`)) // held, then expires
		}
		eventually(t, "bob is ended as a slow consumer", bob.Closed)
		a := alice.Attach()
		a.Detach() // its resume window runs out on a timer
		eventually(t, "alice times out", alice.Closed)
		carol := j("carol")
		carol.Attach().Detach() // a timer still pending at Close
		b.Close(broker.ReasonKicked)
		checkNoBrokerGoroutines(t, since)
	})
	t.Run("shared store", func(t *testing.T) {
		since := maxGoroutineID()
		bp, st := &broker.MemoryBackplane{}, &broker.MemoryStore{}
		opts := broker.Options{Logger: quietLogger(), Rate: -1, ResumeWindow: 50 * time.Millisecond}
		mk := func(id string) *broker.Broker {
			o := opts
			o.NodeID, o.Backplane, o.Store = id, bp, st
			return broker.New(o)
		}
		n1, n2 := mk("n1"), mk("n2")
		ctx := context.Background()
		a, err := n1.Join(ctx, broker.JoinRequest{Room: "r", Peer: "a", Transport: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n2.Join(ctx, broker.JoinRequest{Room: "r", Peer: "b", Transport: "test"}); err != nil {
			t.Fatal(err)
		}
		_ = a.Session.HandleRaw(ctx, []byte(`{"type":"message","to":"b"}`))
		if _, ok := n2.Session(a.Session.Secret()); !ok { // a take-over: n1 drops it in the background
			t.Fatal("no take-over")
		}
		eventually(t, "n1 lets the session go", a.Session.Closed)
		n1.Close(broker.ReasonKicked)
		n2.Close(broker.ReasonKicked)
		checkNoBrokerGoroutines(t, since)
	})
}

// gatedClaims is a backplane whose Claim of peer "x" waits, once it has
// begun, until its node's subscriber has been handed the event that peer
// "y" joined.
type gatedClaims struct {
	*broker.MemoryBackplane
	claiming chan struct{} // closed when x's Claim has begun
	sawY     chan struct{} // closed when the event of y is handed over
	once     sync.Once
}

func (g *gatedClaims) Claim(ctx context.Context, room string, m broker.Member) error {
	if m.Peer == "x" {
		close(g.claiming)
		<-g.sawY
	}
	return g.MemoryBackplane.Claim(ctx, room, m)
}

func (g *gatedClaims) Subscribe(node string, fn func(broker.Event)) func() {
	return g.MemoryBackplane.Subscribe(node, func(ev broker.Event) {
		if ev.Kind == broker.EventJoined && ev.Peer == "y" {
			g.once.Do(func() { close(g.sawY) })
		}
		fn(ev)
	})
}

// TestJoinSeesPeerThatJoinedMeanwhile: a peer y joins on another node while
// x's join on this one is between reading the room's members (y not among
// them) and its entry in the room. The event of y waits for x's join, which
// holds the room's lock across Members and Claim for that reason: x hears
// of y. Were the lock let go between them, the event would find no x (nor
// any room) to tell, and x would never know of y.
func TestJoinSeesPeerThatJoinedMeanwhile(t *testing.T) {
	mem := &broker.MemoryBackplane{}
	g := &gatedClaims{MemoryBackplane: mem, claiming: make(chan struct{}), sawY: make(chan struct{})}
	n1 := newBroker(t, broker.Options{NodeID: "n1", Backplane: g, Rate: -1})
	n2 := newBroker(t, broker.Options{NodeID: "n2", Backplane: mem, Rate: -1})
	ctx := context.Background()
	xj := make(chan *broker.Joined, 1)
	go func() {
		j, err := n1.Join(ctx, broker.JoinRequest{Room: "r", Peer: "x", Transport: "test"})
		if err != nil {
			t.Error(err)
		}
		xj <- j
	}()
	<-g.claiming
	if _, err := n2.Join(ctx, broker.JoinRequest{Room: "r", Peer: "y", Transport: "test"}); err != nil {
		t.Fatal(err)
	}
	x := <-xj
	if x == nil {
		return
	}
	seen := ""
	after := uint64(0)
	eventually(t, "x hears of y", func() bool {
		frames, last, _ := pending(x.Session, after)
		after = last
		for _, f := range frames {
			seen += string(f) + "\n"
		}
		return strings.Contains(seen, `"type":"peer-joined"`) && strings.Contains(seen, `"peer":"y"`)
	})
}
