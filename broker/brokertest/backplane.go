package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// quietFor is how long a peer must hear nothing for a test to call it quiet.
const quietFor = 50 * time.Millisecond

// RunBackplane runs the cluster behaviours of docs/protocol.md, section 4,
// on two brokers, nodes "n1" and "n2", that share one backplane made by
// newBackplane: presence, relays, broadcasts, refusals and the offline hold
// across nodes, no stale membership events when the backplane is slow, and
// one node closing while the other goes on. Every Backplane implementation
// runs it.
//
// newBackplane is called once for each subtest, and what it returns is
// shared by both brokers, so it must be fresh: no rooms, members or events
// in common with any backplane it returned before (a new key prefix, say).
// It arranges the backplane's own closing with t.Cleanup; the brokers are
// closed first. The brokers are made with default Options except NodeID,
// Backplane, a silent Logger and, in some subtests, ResumeWindow (100 ms),
// OfflineHold (3 s or 30 ms) and MaxPeersPerRoom (2).
//
// The suite drives sessions with the Go API (Broker.Join, Session.HandleRaw,
// Attachment.Take and OnPending), with no transport. It never sleeps for a
// backplane to catch up: the backplane the brokers see is wrapped so that
// the suite can wait until every node has acted on every membership event
// published so far, which a backplane across a network passes as reliably
// as the in-memory one. The backplane must meet RunBackplaneContract.
func RunBackplane(t *testing.T, newBackplane func(t *testing.T) broker.Backplane) {
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) broker.Backplane)
	}{
		{"WelcomeListsPeersOnOtherNodes", testClusterWelcome},
		{"PeerLeftCrossesNodes", testClusterPeerLeft},
		{"RelayCrossesNodes", testClusterRelay},
		{"BroadcastReachesBothNodes", testClusterBroadcast},
		{"PeerIDTakenAcrossNodes", testClusterPeerIDTaken},
		{"RoomFullAcrossNodes", testClusterRoomFull},
		{"OfflineHoldDeliveredOnOtherNode", testClusterHoldDelivers},
		{"OfflineHoldExpiresInCluster", testClusterHoldExpires},
		{"NoStaleMembershipEvents", testClusterNoStaleEvents},
		{"CloseOneNode", testClusterCloseOneNode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackplane) })
	}
}

// RunBackplaneContract checks a Backplane by itself, without brokers:
// Claim, Release and Members take effect at once for every caller (a peer
// id has one holder cluster-wide, and only its holder releases it), and
// Subscribe hears, in order, every event that other nodes publish once it
// has returned, never its own node's, and nothing after its cancel (which
// may be called twice). newBackplane is as for RunBackplane: called once
// for each subtest, it returns a fresh backplane and closes it with t.Cleanup.
func RunBackplaneContract(t *testing.T, newBackplane func(t *testing.T) broker.Backplane) {
	t.Run("ClaimRelease", func(t *testing.T) { testContractClaimRelease(t, newBackplane(t)) })
	t.Run("ConcurrentClaims", func(t *testing.T) { testContractConcurrentClaims(t, newBackplane(t)) })
	t.Run("PublishSubscribe", func(t *testing.T) { testContractPublishSubscribe(t, newBackplane(t)) })
}

// cluster is two brokers on one backplane, for the duration of a test.
type cluster struct {
	t      *testing.T
	n1, n2 *broker.Broker
	bp     *watchedBackplane
}

// startCluster starts nodes n1 and n2, made with opts, on bp.
func startCluster(t *testing.T, bp broker.Backplane, opts broker.Options) *cluster {
	t.Helper()
	c := &cluster{t: t, bp: newWatchedBackplane(bp)}
	start := func(node string) *broker.Broker {
		o := opts
		o.NodeID, o.Backplane = node, c.bp
		if o.Logger == nil {
			o.Logger = slog.New(slog.DiscardHandler)
		}
		b := broker.New(o)
		t.Cleanup(func() { b.Close(broker.ReasonKicked) })
		return b
	}
	c.n1, c.n2 = start("n1"), start("n2")
	return c
}

// settle waits until every node has acted on every membership event
// (joined, left) published so far, so that a test checks the cluster at
// rest; the races themselves are the subject of NoStaleMembershipEvents.
func (c *cluster) settle() {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		pending := c.bp.pending()
		if pending == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %v, membership events not yet acted on: %s", waitLimit, pending)
		}
		time.Sleep(time.Millisecond)
	}
}

// join admits peer to room on b, attaches a connection and checks the welcome.
func (c *cluster) join(b *broker.Broker, room, peer string, meta ...string) *sessionPeer {
	c.t.Helper()
	return joinSession(c.t, b, room, peer, meta...)
}

// cjoin joins as join does, then lets the cluster settle.
func (c *cluster) cjoin(b *broker.Broker, room, peer string, meta ...string) *sessionPeer {
	c.t.Helper()
	p := c.join(b, room, peer, meta...)
	c.settle()
	return p
}

// waitFree waits until the backplane no longer lists peer in room.
func (c *cluster) waitFree(room, peer string) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("peer id %s is free in room %s", peer, room), func() bool {
		ms, err := c.bp.Members(context.Background(), room)
		if err != nil {
			c.t.Fatalf("Members(%s): %v", room, err)
		}
		for _, m := range ms {
			if m.Peer == peer {
				return false
			}
		}
		return true
	})
}

// waitFor waits, up to waitLimit, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// codeOf is the protocol code of err: empty for nil.
func codeOf(err error) broker.Code {
	var e *broker.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return broker.Code("not a *broker.Error: " + err.Error())
}

// hasField reports whether the JSON object raw has the field name.
func hasField(raw []byte, name string) bool {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	_, ok := fields[name]
	return ok
}

// sortedPeers is the peers of a welcome, sorted and joined with commas.
func sortedPeers(w Welcome) string {
	var ps []string
	for _, p := range w.Peers {
		ps = append(ps, p.Peer)
	}
	sort.Strings(ps)
	return strings.Join(ps, ",")
}

// sessionPeer is one peer of a test that speaks to its *broker.Session
// directly, as a transport does but with no wire: it hands envelopes to
// HandleRaw and takes frames from its Attachment with Take, waiting for
// them with OnPending. It checks that seqs follow one another without gaps.
type sessionPeer struct {
	t      *testing.T
	s      *broker.Session
	att    *broker.Attachment
	joined *broker.Joined
	name   string
	after  uint64 // the last seq taken from the session
	last   uint64 // the last seq read by the test
	queue  [][]byte
}

// joinSession admits peer to room on b, attaches a connection and checks the welcome.
func joinSession(t *testing.T, b *broker.Broker, room, peer string, meta ...string) *sessionPeer {
	t.Helper()
	req := broker.JoinRequest{Room: room, Peer: peer, Transport: "brokertest"}
	if len(meta) > 0 {
		req.Meta = json.RawMessage(meta[0])
	}
	j, err := b.Join(context.Background(), req)
	if err != nil {
		t.Fatalf("join %s/%s: %v", room, peer, err)
	}
	p := &sessionPeer{t: t, s: j.Session, joined: j, name: j.Session.Peer(), after: j.After, last: j.After}
	p.att = j.Session.Attach()
	w := parseEnvelope(t, j.Welcome)
	if w.Type != broker.TypeWelcome || w.Seq != 1 || w.Room != room || j.After != 1 || j.Resumed {
		t.Fatalf("welcome %s, After %d", j.Welcome, j.After)
	}
	return p
}

func parseEnvelope(t *testing.T, data []byte) Envelope {
	t.Helper()
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("broker wrote %q: %v", data, err)
	}
	if env.V != broker.Version {
		t.Fatalf("envelope without v:1: %s", data)
	}
	env.Raw = data
	return env
}

// welcome is the payload of the peer's welcome.
func (p *sessionPeer) welcome() Welcome {
	p.t.Helper()
	var w Welcome
	if err := json.Unmarshal(parseEnvelope(p.t, p.joined.Welcome).Payload, &w); err != nil {
		p.t.Fatal(err)
	}
	return w
}

// fill takes what the session has for the peer into its queue, waiting up
// to wait for something to come; it reports whether anything came.
func (p *sessionPeer) fill(wait time.Duration) bool {
	p.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		frames, last, err := p.att.Take(p.after)
		if err != nil {
			p.t.Fatalf("%s: take after %d: %v", p.name, p.after, err)
		}
		if len(frames) > 0 {
			p.queue = append(p.queue, frames...)
			p.after = last
			return true
		}
		if wait <= 0 {
			return false
		}
		ready := make(chan struct{})
		p.att.OnPending(p.after, func() { close(ready) })
		select {
		case <-ready:
		case <-timer.C:
			return false
		}
	}
}

// next returns the next frame for the peer, waiting for it.
func (p *sessionPeer) next() Envelope {
	p.t.Helper()
	if len(p.queue) == 0 && !p.fill(waitLimit) {
		p.t.Fatalf("%s: nothing arrived after seq %d in %v", p.name, p.after, waitLimit)
	}
	env := parseEnvelope(p.t, p.queue[0])
	p.queue = p.queue[1:]
	switch {
	case env.Type == broker.TypePong:
		if env.Seq != 0 {
			p.t.Fatalf("%s: pong with a seq: %s", p.name, env.Raw)
		}
	case env.Seq != p.last+1:
		p.t.Fatalf("%s: seq %d after %d: %s", p.name, env.Seq, p.last, env.Raw)
	default:
		p.last = env.Seq
	}
	return env
}

// expect returns the next frame, which must be of type typ.
func (p *sessionPeer) expect(typ string) Envelope {
	p.t.Helper()
	env := p.next()
	if env.Type != typ {
		p.t.Fatalf("%s: got %s, want a %s", p.name, env.Raw, typ)
	}
	return env
}

// expectError returns the next frame's error payload; it must have code and ref.
func (p *sessionPeer) expectError(code broker.Code, ref string) ErrorPayload {
	p.t.Helper()
	env := p.expect(broker.TypeError)
	var e ErrorPayload
	if err := json.Unmarshal(env.Payload, &e); err != nil {
		p.t.Fatal(err)
	}
	if e.Code != string(code) || e.Ref != ref || e.Message == "" {
		p.t.Fatalf("%s: error %s, want code %s ref %q", p.name, env.Raw, code, ref)
	}
	return e
}

// expectPeerLeft reads a peer-left for peer with reason.
func (p *sessionPeer) expectPeerLeft(peer, reason string) {
	p.t.Helper()
	env := p.expect(broker.TypePeerLeft)
	want := fmt.Sprintf(`{"peer":%q,"reason":%q}`, peer, reason)
	if string(env.Payload) != want {
		p.t.Fatalf("%s: peer-left %s, want payload %s", p.name, env.Raw, want)
	}
}

// waiting is what has arrived for the peer and it has not read, without
// waiting and without reading it.
func (p *sessionPeer) waiting() [][]byte {
	p.t.Helper()
	p.fill(0)
	return p.queue
}

// quiet checks that nothing arrives for the peer for a little while.
func (p *sessionPeer) quiet() {
	p.t.Helper()
	if len(p.queue) > 0 || p.fill(quietFor) {
		p.t.Fatalf("%s: unexpected %s", p.name, p.queue[0])
	}
}

// send hands the broker one envelope from the peer, as its transport would.
func (p *sessionPeer) send(raw string) error {
	p.t.Helper()
	return p.s.HandleRaw(context.Background(), []byte(raw))
}

func (p *sessionPeer) mustSend(raw string) {
	p.t.Helper()
	if err := p.send(raw); err != nil {
		p.t.Fatalf("%s: send %s: %v", p.name, raw, err)
	}
}

// watchedBackplane is the backplane as the brokers of a cluster see it: it
// counts the membership events each node publishes until every other node
// has acted on them, so that a test may wait for the cluster to be at rest.
type watchedBackplane struct {
	broker.Backplane

	mu   sync.Mutex
	subs map[string]int                 // live subscriptions by node
	todo map[string]map[eventKey]uint64 // by node: the events it has yet to act on
}

// eventKey tells one membership event from another.
type eventKey struct {
	kind                     broker.EventKind
	node, room, peer, reason string
}

func (k eventKey) String() string {
	return fmt.Sprintf("%s %s/%s from %s", k.kind, k.room, k.peer, k.node)
}

func newWatchedBackplane(bp broker.Backplane) *watchedBackplane {
	return &watchedBackplane{Backplane: bp, subs: make(map[string]int), todo: make(map[string]map[eventKey]uint64)}
}

func membership(ev broker.Event) (eventKey, bool) {
	if ev.Kind != broker.EventJoined && ev.Kind != broker.EventLeft {
		return eventKey{}, false
	}
	return eventKey{ev.Kind, ev.Node, ev.Room, ev.Peer, ev.Reason}, true
}

// Publish implements broker.Backplane. A membership event is counted for
// every other node before it is published, since it may reach them before
// Publish returns.
func (w *watchedBackplane) Publish(ctx context.Context, ev broker.Event) error {
	key, ok := membership(ev)
	var to []string
	if ok {
		w.mu.Lock()
		for node := range w.subs {
			if node != ev.Node {
				w.todo[node][key]++
				to = append(to, node)
			}
		}
		w.mu.Unlock()
	}
	err := w.Backplane.Publish(ctx, ev)
	if err != nil && len(to) > 0 {
		w.mu.Lock()
		for _, node := range to {
			w.doneLocked(node, key)
		}
		w.mu.Unlock()
	}
	return err
}

// Subscribe implements broker.Backplane. The node counts as subscribed from
// when the backplane's Subscribe returns: events published before may miss it.
func (w *watchedBackplane) Subscribe(node string, fn func(broker.Event)) (cancel func()) {
	stop := w.Backplane.Subscribe(node, func(ev broker.Event) {
		fn(ev)
		if key, ok := membership(ev); ok {
			w.mu.Lock()
			w.doneLocked(node, key)
			w.mu.Unlock()
		}
	})
	w.mu.Lock()
	w.subs[node]++
	if w.todo[node] == nil {
		w.todo[node] = make(map[eventKey]uint64)
	}
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.subs[node]--; w.subs[node] <= 0 {
				delete(w.subs, node)
				delete(w.todo, node)
			}
		})
	}
}

func (w *watchedBackplane) doneLocked(node string, key eventKey) {
	todo := w.todo[node]
	if todo[key] > 1 {
		todo[key]--
	} else {
		delete(todo, key) // also an event the backplane published itself: not counted
	}
}

// pending describes the membership events not yet acted on: empty when none.
func (w *watchedBackplane) pending() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for node, todo := range w.todo {
		for key, n := range todo {
			out = append(out, fmt.Sprintf("%s: %d× %s", node, n, key))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// slowBackplane delivers every event late, as a backplane across a slow
// network does.
type slowBackplane struct {
	broker.Backplane
	delay time.Duration
}

// Subscribe implements broker.Backplane.
func (s slowBackplane) Subscribe(node string, fn func(broker.Event)) func() {
	return s.Backplane.Subscribe(node, func(ev broker.Event) {
		time.Sleep(s.delay)
		fn(ev)
	})
}

func testClusterWelcome(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{})
	alice := c.cjoin(c.n1, "call", "alice", `{"ua":"firefox"}`)
	bob := c.cjoin(c.n2, "call", "bob")
	w := bob.welcome()
	if len(w.Peers) != 1 || w.Peers[0].Peer != "alice" || string(w.Peers[0].Meta) != `{"ua":"firefox"}` {
		t.Fatalf("bob's welcome on n2: %s", bob.joined.Welcome)
	}
	pj := alice.expect(broker.TypePeerJoined)
	if pj.Seq != 2 || pj.Room != "call" || string(pj.Payload) != `{"peer":"bob"}` {
		t.Fatalf("alice on n1 got %s", pj.Raw)
	}
	carol := c.cjoin(c.n1, "call", "carol")
	if w := carol.welcome(); len(w.Peers) != 2 || w.Peers[0].Peer != "alice" || w.Peers[1].Peer != "bob" {
		t.Fatalf("carol's welcome: %s", carol.joined.Welcome)
	}
	alice.expect(broker.TypePeerJoined)
	if env := bob.expect(broker.TypePeerJoined); string(env.Payload) != `{"peer":"carol"}` {
		t.Fatalf("bob got %s", env.Raw)
	}
}

func testClusterPeerLeft(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{ResumeWindow: 100 * time.Millisecond})
	alice := c.cjoin(c.n1, "call", "alice")
	bob := c.cjoin(c.n2, "call", "bob")
	carol := c.cjoin(c.n2, "call", "carol")
	alice.expect(broker.TypePeerJoined)
	alice.expect(broker.TypePeerJoined)
	bob.expect(broker.TypePeerJoined)
	alice.mustSend(`{"type":"leave"}`)
	bob.expectPeerLeft("alice", broker.ReasonLeave)
	carol.expectPeerLeft("alice", broker.ReasonLeave)
	carol.att.Detach() // carol's connection drops and does not come back
	bob.expectPeerLeft("carol", broker.ReasonTimeout)
	// Their ids are free again, cluster-wide.
	c.waitFree("call", "alice")
	c.waitFree("call", "carol")
	c.cjoin(c.n2, "call", "alice")
	c.cjoin(c.n1, "call", "carol")
}

func testClusterRelay(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{})
	alice := c.cjoin(c.n1, "call", "alice")
	bob := c.cjoin(c.n2, "call", "bob")
	alice.expect(broker.TypePeerJoined)
	offer := `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}`
	alice.mustSend(`{"type":"offer","to":"bob","from":"mallory","payload":` + offer + `}`)
	env := bob.expect(broker.TypeOffer)
	if env.From != "alice" || env.Room != "call" || env.To != "bob" || env.Seq != 2 || string(env.Payload) != offer {
		t.Fatalf("offer across nodes: %s", env.Raw)
	}
	bob.mustSend(`{"type":"answer","to":"alice","payload":{"type":"answer","sdp":"v=0"}}`)
	if env := alice.expect(broker.TypeAnswer); env.From != "bob" || env.Seq != 3 {
		t.Fatalf("answer across nodes: %s", env.Raw)
	}
	// Trickled candidates keep their order across nodes.
	for i := 0; i < 200; i++ {
		alice.mustSend(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d"}}`, i))
	}
	for i := 0; i < 200; i++ {
		if env := bob.expect(broker.TypeCandidate); string(env.Payload) != fmt.Sprintf(`{"candidate":"c%d"}`, i) || env.Seq != uint64(3+i) {
			t.Fatalf("candidate %d across nodes: %s", i, env.Raw)
		}
	}
	alice.quiet()
}

func testClusterBroadcast(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{})
	alice := c.cjoin(c.n1, "call", "alice")
	bob := c.cjoin(c.n1, "call", "bob")
	carol := c.cjoin(c.n2, "call", "carol")
	dave := c.cjoin(c.n2, "call", "dave")
	other := c.cjoin(c.n2, "elsewhere", "erin")
	alice.expect(broker.TypePeerJoined)
	alice.expect(broker.TypePeerJoined)
	alice.expect(broker.TypePeerJoined)
	bob.expect(broker.TypePeerJoined)
	bob.expect(broker.TypePeerJoined)
	carol.expect(broker.TypePeerJoined)
	alice.mustSend(`{"type":"message","payload":{"hello":"all"}}`)
	for _, p := range []*sessionPeer{bob, carol, dave} {
		env := p.expect(broker.TypeMessage)
		if env.From != "alice" || hasField(env.Raw, "to") || env.Room != "call" || string(env.Payload) != `{"hello":"all"}` {
			t.Fatalf("%s got %s", p.name, env.Raw)
		}
	}
	carol.mustSend(`{"type":"message","payload":2}`)
	for _, p := range []*sessionPeer{alice, bob, dave} {
		if env := p.expect(broker.TypeMessage); env.From != "carol" || string(env.Payload) != "2" {
			t.Fatalf("%s got %s", p.name, env.Raw)
		}
	}
	alice.quiet()
	carol.quiet()
	other.quiet()
}

func testClusterPeerIDTaken(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{})
	c.cjoin(c.n1, "call", "alice")
	_, err := c.n2.Join(context.Background(), broker.JoinRequest{Room: "call", Peer: "alice"})
	if codeOf(err) != broker.CodePeerIDTaken {
		t.Fatalf("alice again on n2: %v, want peer-id-taken", err)
	}
	if c.n2.Sessions() != 0 {
		t.Fatalf("n2 holds %d sessions after a refused join", c.n2.Sessions())
	}
	c.cjoin(c.n2, "other", "alice") // another room: fine
}

func testClusterRoomFull(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{MaxPeersPerRoom: 2})
	c.cjoin(c.n1, "call", "a")
	c.cjoin(c.n2, "call", "b")
	if _, err := c.n1.Join(context.Background(), broker.JoinRequest{Room: "call", Peer: "c"}); codeOf(err) != broker.CodeRoomFull {
		t.Fatalf("third peer of a room of 2 across nodes: %v, want room-full", err)
	}
}

func testClusterHoldDelivers(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{OfflineHold: 3 * time.Second})
	alice := c.cjoin(c.n1, "call", "alice")
	alice.mustSend(`{"type":"offer","id":"o1","to":"bob","payload":{"type":"offer","sdp":"held"}}`)
	alice.mustSend(`{"type":"message","id":"m1","to":"bob","payload":"second"}`)
	bob := c.cjoin(c.n2, "call", "bob")
	env := bob.expect(broker.TypeOffer)
	if env.From != "alice" || env.Seq != 2 || string(env.Payload) != `{"type":"offer","sdp":"held"}` {
		t.Fatalf("held offer delivered on n2 as %s", env.Raw)
	}
	if env := bob.expect(broker.TypeMessage); env.Seq != 3 || string(env.Payload) != `"second"` {
		t.Fatalf("held message delivered on n2 as %s", env.Raw)
	}
	alice.expect(broker.TypePeerJoined)
	alice.quiet() // no peer-unavailable
}

func testClusterHoldExpires(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{OfflineHold: 30 * time.Millisecond})
	alice := c.cjoin(c.n1, "call", "alice")
	bob := c.cjoin(c.n2, "call", "bob")
	alice.expect(broker.TypePeerJoined)
	alice.mustSend(`{"type":"message","id":"m1","to":"nobody"}`)
	alice.expectError(broker.CodePeerUnavailable, "m1")
	bob.quiet()
}

func testClusterNoStaleEvents(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	// A peer that joins while another node's news is still on its way
	// must not hear of a peer twice (welcome, then peer-joined), nor of
	// the leaving of a peer it never saw.
	c := startCluster(t, slowBackplane{Backplane: newBackplane(t), delay: 50 * time.Millisecond}, broker.Options{})
	alice := c.join(c.n1, "call", "alice")
	carol := c.join(c.n2, "call", "carol") // alice's joined event has not reached n2
	if w := carol.welcome(); len(w.Peers) != 1 || w.Peers[0].Peer != "alice" {
		t.Fatalf("carol's welcome: %s", carol.joined.Welcome)
	}
	alice.expect(broker.TypePeerJoined)
	c.settle() // n2 has acted on alice's joined event
	if frames := carol.waiting(); len(frames) > 0 {
		t.Errorf("carol's welcome listed alice, then carol got %s", frames[0])
	}

	bob := c.join(c.n1, "call", "bob")
	c.settle()
	alice.expect(broker.TypePeerJoined)
	carol.expect(broker.TypePeerJoined)
	bob.mustSend(`{"type":"leave"}`)
	dave := c.join(c.n2, "call", "dave") // bob's left event has not reached n2
	if w := dave.welcome(); sortedPeers(w) != "alice,carol" {
		t.Fatalf("dave's welcome: %s", dave.joined.Welcome)
	}
	c.settle() // n2 has acted on bob's left event
	for _, f := range dave.waiting() {
		if strings.Contains(string(f), `"bob"`) {
			t.Errorf("dave never saw bob, yet got %s", f)
		}
	}
}

func testClusterCloseOneNode(t *testing.T, newBackplane func(*testing.T) broker.Backplane) {
	c := startCluster(t, newBackplane(t), broker.Options{})
	alice := c.cjoin(c.n1, "call", "alice")
	c.cjoin(c.n2, "call", "bob")
	alice.expect(broker.TypePeerJoined)
	c.n2.Close(broker.ReasonKicked)
	alice.expectPeerLeft("bob", broker.ReasonKicked)
	// n1 goes on.
	carol := c.cjoin(c.n1, "call", "carol")
	if w := carol.welcome(); len(w.Peers) != 1 || w.Peers[0].Peer != "alice" {
		t.Fatalf("carol's welcome after n2 closed: %s", carol.joined.Welcome)
	}
}

func testContractClaimRelease(t *testing.T, bp broker.Backplane) {
	ctx := context.Background()
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
}

func testContractConcurrentClaims(t *testing.T, bp broker.Backplane) {
	ctx := context.Background()
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
}

// heard is the events one subscriber heard.
type heard struct {
	mu  sync.Mutex
	evs []broker.Event
}

func (h *heard) add(ev broker.Event) {
	h.mu.Lock()
	h.evs = append(h.evs, ev)
	h.mu.Unlock()
}

func (h *heard) events() []broker.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]broker.Event(nil), h.evs...)
}

func (h *heard) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.evs)
}

func testContractPublishSubscribe(t *testing.T, bp broker.Backplane) {
	ctx := context.Background()
	subscribe := func(node string) (*heard, func()) {
		h := &heard{}
		return h, bp.Subscribe(node, h.add)
	}
	publish := func(ev broker.Event) {
		t.Helper()
		if err := bp.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	h1, cancel1 := subscribe("n1")
	h2, cancel2 := subscribe("n2")
	defer cancel2()
	const n = 100
	for i := 0; i < n; i++ {
		publish(broker.Event{Kind: broker.EventRelay, Node: "n1", Room: "r", Type: "message", Body: []byte(fmt.Sprint(i))})
	}
	waitFor(t, "n2 has every event", func() bool { return h2.count() >= n })
	for i, ev := range h2.events() {
		if string(ev.Body) != fmt.Sprint(i) || ev.Node != "n1" || ev.Kind != broker.EventRelay || ev.Room != "r" || ev.Type != "message" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	// n1 does not hear its own events: had it, they would have come before
	// this one of n2's, published after them.
	publish(broker.Event{Kind: broker.EventJoined, Node: "n2", Room: "r", Peer: "p", Meta: json.RawMessage(`{"m":1}`)})
	waitFor(t, "n1 hears n2's event", func() bool { return h1.count() >= 1 })
	if evs := h1.events(); len(evs) != 1 || evs[0].Kind != broker.EventJoined || evs[0].Node != "n2" || evs[0].Peer != "p" || string(evs[0].Meta) != `{"m":1}` {
		t.Fatalf("n1 heard %+v, want only n2's joined event", evs)
	}
	cancel1()
	cancel1() // cancelling twice is harmless
	h3, cancel3 := subscribe("n3")
	defer cancel3()
	publish(broker.Event{Kind: broker.EventLeft, Node: "n2", Room: "r", Peer: "p", Reason: broker.ReasonLeave})
	waitFor(t, "n3 hears n2's event", func() bool { return h3.count() >= 1 })
	time.Sleep(quietFor) // as long again for n1, were it still subscribed
	if evs := h3.events(); len(evs) != 1 || evs[0].Kind != broker.EventLeft || evs[0].Reason != broker.ReasonLeave {
		t.Fatalf("n3 heard %+v, want only n2's left event", evs)
	}
	if evs := h1.events(); len(evs) != 1 {
		t.Fatalf("a cancelled subscriber heard %+v", evs[1:])
	}
	if c := h2.count(); c != n {
		t.Fatalf("n2 heard %d events, want the %d of n1 and none of its own", c, n)
	}
}
