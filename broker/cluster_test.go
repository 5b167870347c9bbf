package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

func TestMemoryBackplaneCluster(t *testing.T) {
	runBackplaneSuite(t, func(*testing.T) broker.Backplane { return &broker.MemoryBackplane{} })
}

func TestMemoryBackplane(t *testing.T) {
	runBackplaneContract(t, func(*testing.T) broker.Backplane { return &broker.MemoryBackplane{} })
}

// cluster starts two brokers, n1 and n2, on one backplane, for the test's duration.
func cluster(t *testing.T, newBackplane func(*testing.T) broker.Backplane, opts broker.Options) (n1, n2 *broker.Broker) {
	t.Helper()
	bp := newBackplane(t)
	o1, o2 := opts, opts
	o1.NodeID, o1.Backplane = "n1", bp
	o2.NodeID, o2.Backplane = "n2", bp
	return newBroker(t, o1), newBroker(t, o2)
}

// settle is how long a test lets membership events reach the other node
// before the next step, so that it checks the cluster at rest; the races
// themselves are the subject of NoStaleMembershipEvents.
const settle = 30 * time.Millisecond

// cjoin joins as join does, then lets the cluster settle.
func cjoin(t *testing.T, b *broker.Broker, room, peer string, meta ...string) *client {
	t.Helper()
	c := join(t, b, room, peer, meta...)
	time.Sleep(settle)
	return c
}

// slowBackplane delivers every event late, as a backplane across a
// network does.
type slowBackplane struct {
	broker.Backplane
	delay time.Duration
}

func (s slowBackplane) Subscribe(node string, fn func(broker.Event)) func() {
	return s.Backplane.Subscribe(node, func(ev broker.Event) {
		time.Sleep(s.delay)
		fn(ev)
	})
}

// runBackplaneSuite runs the cluster behaviours of docs/protocol.md,
// section 4, on two brokers that share one backplane made by newBackplane.
// Every Backplane implementation runs it.
func runBackplaneSuite(t *testing.T, newBackplane func(t *testing.T) broker.Backplane) {
	t.Run("WelcomeListsPeersOnOtherNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{})
		alice := cjoin(t, n1, "call", "alice", `{"ua":"firefox"}`)
		bob := cjoin(t, n2, "call", "bob")
		w := bob.welcome()
		if len(w.Peers) != 1 || w.Peers[0].Peer != "alice" || string(w.Peers[0].Meta) != `{"ua":"firefox"}` {
			t.Fatalf("bob's welcome on n2: %s", bob.joined.Welcome)
		}
		pj := alice.expect(broker.TypePeerJoined)
		if pj.Seq != 2 || pj.Room != "call" || string(pj.Payload) != `{"peer":"bob"}` {
			t.Fatalf("alice on n1 got %s", pj.raw)
		}
		carol := cjoin(t, n1, "call", "carol")
		if w := carol.welcome(); len(w.Peers) != 2 || w.Peers[0].Peer != "alice" || w.Peers[1].Peer != "bob" {
			t.Fatalf("carol's welcome: %s", carol.joined.Welcome)
		}
		alice.expect(broker.TypePeerJoined)
		if w := bob.expect(broker.TypePeerJoined); string(w.Payload) != `{"peer":"carol"}` {
			t.Fatalf("bob got %s", w.raw)
		}
	})

	t.Run("PeerLeftCrossesNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{ResumeWindow: 40 * time.Millisecond})
		alice := cjoin(t, n1, "call", "alice")
		bob := cjoin(t, n2, "call", "bob")
		carol := cjoin(t, n2, "call", "carol")
		alice.expect(broker.TypePeerJoined)
		alice.expect(broker.TypePeerJoined)
		bob.expect(broker.TypePeerJoined)
		alice.mustSend(`{"type":"leave"}`)
		peerLeft(t, bob, "alice", broker.ReasonLeave)
		peerLeft(t, carol, "alice", broker.ReasonLeave)
		carol.att.Detach() // carol's connection drops and does not come back
		peerLeft(t, bob, "carol", broker.ReasonTimeout)
		// Their ids are free again, cluster-wide.
		cjoin(t, n2, "call", "alice")
		cjoin(t, n1, "call", "carol")
	})

	t.Run("RelayCrossesNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{})
		alice := cjoin(t, n1, "call", "alice")
		bob := cjoin(t, n2, "call", "bob")
		alice.expect(broker.TypePeerJoined)
		offer := `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}`
		alice.mustSend(`{"type":"offer","to":"bob","from":"mallory","payload":` + offer + `}`)
		w := bob.expect(broker.TypeOffer)
		if w.From != "alice" || w.Room != "call" || w.To == nil || *w.To != "bob" || w.Seq != 2 || string(w.Payload) != offer {
			t.Fatalf("offer across nodes: %s", w.raw)
		}
		bob.mustSend(`{"type":"answer","to":"alice","payload":{"type":"answer","sdp":"v=0"}}`)
		if w := alice.expect(broker.TypeAnswer); w.From != "bob" || w.Seq != 3 {
			t.Fatalf("answer across nodes: %s", w.raw)
		}
		// Trickled candidates keep their order across nodes.
		for i := 0; i < 200; i++ {
			alice.mustSend(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d"}}`, i))
		}
		for i := 0; i < 200; i++ {
			if w := bob.expect(broker.TypeCandidate); string(w.Payload) != fmt.Sprintf(`{"candidate":"c%d"}`, i) || w.Seq != uint64(3+i) {
				t.Fatalf("candidate %d across nodes: %s", i, w.raw)
			}
		}
		alice.quiet()
	})

	t.Run("BroadcastReachesBothNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{})
		alice := cjoin(t, n1, "call", "alice")
		bob := cjoin(t, n1, "call", "bob")
		carol := cjoin(t, n2, "call", "carol")
		dave := cjoin(t, n2, "call", "dave")
		other := cjoin(t, n2, "elsewhere", "erin")
		alice.expect(broker.TypePeerJoined)
		alice.expect(broker.TypePeerJoined)
		alice.expect(broker.TypePeerJoined)
		bob.expect(broker.TypePeerJoined)
		bob.expect(broker.TypePeerJoined)
		carol.expect(broker.TypePeerJoined)
		alice.mustSend(`{"type":"message","payload":{"hello":"all"}}`)
		for _, c := range []*client{bob, carol, dave} {
			w := c.expect(broker.TypeMessage)
			if w.From != "alice" || w.To != nil || w.Room != "call" || string(w.Payload) != `{"hello":"all"}` {
				t.Fatalf("%s got %s", c.peer, w.raw)
			}
		}
		carol.mustSend(`{"type":"message","payload":2}`)
		for _, c := range []*client{alice, bob, dave} {
			if w := c.expect(broker.TypeMessage); w.From != "carol" || string(w.Payload) != "2" {
				t.Fatalf("%s got %s", c.peer, w.raw)
			}
		}
		alice.quiet()
		carol.quiet()
		other.quiet()
	})

	t.Run("PeerIDTakenAcrossNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{})
		cjoin(t, n1, "call", "alice")
		_, err := n2.Join(context.Background(), broker.JoinRequest{Room: "call", Peer: "alice"})
		if codeOf(err) != broker.CodePeerIDTaken {
			t.Fatalf("alice again on n2: %v, want peer-id-taken", err)
		}
		if n2.Sessions() != 0 {
			t.Fatalf("n2 holds %d sessions after a refused join", n2.Sessions())
		}
		cjoin(t, n2, "other", "alice") // another room: fine
	})

	t.Run("RoomFullAcrossNodes", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{MaxPeersPerRoom: 2})
		cjoin(t, n1, "call", "a")
		cjoin(t, n2, "call", "b")
		if _, err := n1.Join(context.Background(), broker.JoinRequest{Room: "call", Peer: "c"}); codeOf(err) != broker.CodeRoomFull {
			t.Fatalf("third peer of a room of 2 across nodes: %v, want room-full", err)
		}
	})

	t.Run("OfflineHoldDeliveredOnOtherNode", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{OfflineHold: 3 * time.Second})
		alice := cjoin(t, n1, "call", "alice")
		alice.mustSend(`{"type":"offer","id":"o1","to":"bob","payload":{"type":"offer","sdp":"held"}}`)
		alice.mustSend(`{"type":"message","id":"m1","to":"bob","payload":"second"}`)
		bob := cjoin(t, n2, "call", "bob")
		w := bob.expect(broker.TypeOffer)
		if w.From != "alice" || w.Seq != 2 || string(w.Payload) != `{"type":"offer","sdp":"held"}` {
			t.Fatalf("held offer delivered on n2 as %s", w.raw)
		}
		if w := bob.expect(broker.TypeMessage); w.Seq != 3 || string(w.Payload) != `"second"` {
			t.Fatalf("held message delivered on n2 as %s", w.raw)
		}
		alice.expect(broker.TypePeerJoined)
		alice.quiet() // no peer-unavailable
	})

	t.Run("OfflineHoldExpiresInCluster", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{OfflineHold: 30 * time.Millisecond})
		alice := cjoin(t, n1, "call", "alice")
		bob := cjoin(t, n2, "call", "bob")
		alice.expect(broker.TypePeerJoined)
		alice.mustSend(`{"type":"message","id":"m1","to":"nobody"}`)
		alice.expectError(broker.CodePeerUnavailable, "m1")
		bob.quiet()
	})

	t.Run("NoStaleMembershipEvents", func(t *testing.T) {
		// A peer that joins while another node's news is still on its way
		// must not hear of a peer twice (welcome, then peer-joined), nor of
		// the leaving of a peer it never saw.
		slow := func(t *testing.T) broker.Backplane {
			return slowBackplane{Backplane: newBackplane(t), delay: 50 * time.Millisecond}
		}
		n1, n2 := cluster(t, slow, broker.Options{})
		alice := join(t, n1, "call", "alice")
		carol := join(t, n2, "call", "carol") // alice's joined event has not reached n2
		if w := carol.welcome(); len(w.Peers) != 1 || w.Peers[0].Peer != "alice" {
			t.Fatalf("carol's welcome: %s", carol.joined.Welcome)
		}
		alice.expect(broker.TypePeerJoined)
		time.Sleep(150 * time.Millisecond)
		if len(carol.queue) == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			frames, _, _ := carol.s.Receive(ctx, carol.after)
			cancel()
			if len(frames) > 0 {
				t.Errorf("carol's welcome listed alice, then carol got %s", frames[0])
			}
		}

		bob := join(t, n1, "call", "bob")
		time.Sleep(150 * time.Millisecond)
		alice.expect(broker.TypePeerJoined)
		carol.expect(broker.TypePeerJoined)
		bob.mustSend(`{"type":"leave"}`)
		dave := join(t, n2, "call", "dave") // bob's left event has not reached n2
		if w := dave.welcome(); sortedPeers(w) != "alice,carol" {
			t.Fatalf("dave's welcome: %s", dave.joined.Welcome)
		}
		time.Sleep(150 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		frames, _, _ := dave.s.Receive(ctx, dave.after)
		cancel()
		for _, f := range frames {
			if strings.Contains(string(f), `"bob"`) {
				t.Errorf("dave never saw bob, yet got %s", f)
			}
		}
	})

	t.Run("CloseOneNode", func(t *testing.T) {
		n1, n2 := cluster(t, newBackplane, broker.Options{})
		alice := cjoin(t, n1, "call", "alice")
		bob := cjoin(t, n2, "call", "bob")
		alice.expect(broker.TypePeerJoined)
		n2.Close(broker.ReasonKicked)
		peerLeft(t, alice, "bob", broker.ReasonKicked)
		// n1 goes on.
		carol := cjoin(t, n1, "call", "carol")
		if w := carol.welcome(); len(w.Peers) != 1 || w.Peers[0].Peer != "alice" {
			t.Fatalf("carol's welcome after n2 closed: %s", carol.joined.Welcome)
		}
		_ = bob
	})
}

// runBackplaneContract checks a Backplane by itself, without brokers.
func runBackplaneContract(t *testing.T, newBackplane func(t *testing.T) broker.Backplane) {
	ctx := context.Background()
	t.Run("ClaimRelease", func(t *testing.T) {
		bp := newBackplane(t)
		a := broker.Member{Peer: "alice", Session: "s1", Node: "n1", Meta: json.RawMessage(`{"x":1}`)}
		if err := bp.Claim(ctx, "r", a); err != nil {
			t.Fatal(err)
		}
		if err := bp.Claim(ctx, "r", a); err != nil {
			t.Fatalf("the holder claiming again: %v", err)
		}
		if err := bp.Claim(ctx, "r", broker.Member{Peer: "alice", Session: "s2", Node: "n2"}); codeOf(err) != broker.CodePeerIDTaken {
			t.Fatalf("another session claiming alice: %v", err)
		}
		if err := bp.Claim(ctx, "r2", broker.Member{Peer: "alice", Session: "s2", Node: "n2"}); err != nil {
			t.Fatalf("alice in another room: %v", err)
		}
		ms, err := bp.Members(ctx, "r")
		if err != nil || len(ms) != 1 || ms[0].Peer != "alice" || ms[0].Session != "s1" || ms[0].Node != "n1" || string(ms[0].Meta) != `{"x":1}` {
			t.Fatalf("Members = %+v, %v", ms, err)
		}
		// Only the holder's release counts.
		if err := bp.Release(ctx, "r", broker.Member{Peer: "alice", Session: "s2"}); err != nil {
			t.Fatal(err)
		}
		if ms, _ := bp.Members(ctx, "r"); len(ms) != 1 {
			t.Fatalf("a stranger's release freed alice: %+v", ms)
		}
		if err := bp.Release(ctx, "r", a); err != nil {
			t.Fatal(err)
		}
		if ms, _ := bp.Members(ctx, "r"); len(ms) != 0 {
			t.Fatalf("after release: %+v", ms)
		}
		if err := bp.Release(ctx, "nosuch", a); err != nil {
			t.Fatalf("release in an unknown room: %v", err)
		}
		if ms, err := bp.Members(ctx, "nosuch"); err != nil || len(ms) != 0 {
			t.Fatalf("members of an unknown room: %+v, %v", ms, err)
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		bp := newBackplane(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if bp.Claim(ctx, "r", broker.Member{Peer: "p", Session: fmt.Sprint("s", i), Node: "n"}) == nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d sessions hold one peer id", won)
		}
	})

	t.Run("PublishSubscribe", func(t *testing.T) {
		bp := newBackplane(t)
		type got struct {
			mu  sync.Mutex
			evs []broker.Event
		}
		subscribe := func(node string) (*got, func()) {
			g := &got{}
			cancel := bp.Subscribe(node, func(ev broker.Event) {
				g.mu.Lock()
				g.evs = append(g.evs, ev)
				g.mu.Unlock()
			})
			return g, cancel
		}
		g1, cancel1 := subscribe("n1")
		g2, cancel2 := subscribe("n2")
		defer cancel2()
		const n = 100
		for i := 0; i < n; i++ {
			if err := bp.Publish(ctx, broker.Event{Kind: broker.EventRelay, Node: "n1", Room: "r", Type: "message", Body: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "n2 has every event", func() bool { g2.mu.Lock(); defer g2.mu.Unlock(); return len(g2.evs) == n })
		g2.mu.Lock()
		for i, ev := range g2.evs {
			if string(ev.Body) != fmt.Sprint(i) || ev.Node != "n1" || ev.Kind != broker.EventRelay {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
		g2.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		g1.mu.Lock()
		if len(g1.evs) != 0 {
			t.Fatalf("n1 heard its own %d events", len(g1.evs))
		}
		g1.mu.Unlock()
		cancel1()
		cancel1() // cancelling twice is harmless
		if err := bp.Publish(ctx, broker.Event{Kind: broker.EventLeft, Node: "n2", Room: "r"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		g1.mu.Lock()
		defer g1.mu.Unlock()
		if len(g1.evs) != 0 {
			t.Fatal("a cancelled subscriber heard an event")
		}
	})
}

// sortedPeers is the peers of a welcome, sorted.
func sortedPeers(w welcomePayload) string {
	var ps []string
	for _, p := range w.Peers {
		ps = append(ps, p.Peer)
	}
	sort.Strings(ps)
	return strings.Join(ps, ",")
}
