package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// clusterNode starts a broker that shares bp and st with the other nodes of
// the test, and closes it at the end.
func clusterNode(t *testing.T, id string, bp broker.Backplane, st broker.Store, opts broker.Options) *broker.Broker {
	t.Helper()
	opts.NodeID, opts.Backplane, opts.Store, opts.Logger, opts.Rate = id, bp, st, quietLogger(), -1
	b := broker.New(opts)
	t.Cleanup(func() { b.Close(broker.ReasonKicked) })
	return b
}

// joinOn joins peer to room "r" on node b.
func joinOn(t *testing.T, b *broker.Broker, peer string) *broker.Joined {
	t.Helper()
	j, err := b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: peer, Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestSessionOutlivesItsNode: with a Store, a session whose node dies
// resumes on another node and gets exactly what it missed, including what
// was sent to it after its node died; its peers saw no peer-left.
func TestSessionOutlivesItsNode(t *testing.T) {
	bp, st := &broker.MemoryBackplane{}, &broker.MemoryStore{}
	n1, n2 := clusterNode(t, "n1", bp, st, broker.Options{}), clusterNode(t, "n2", bp, st, broker.Options{})
	ctx := context.Background()
	bob, alice := joinOn(t, n1, "bob"), joinOn(t, n2, "alice")
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
		Resume: &broker.Resume{Session: bob.Session.Secret(), LastSeq: after}})
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

// countingStore counts the Take and Written calls of a MemoryStore.
type countingStore struct {
	broker.MemoryStore
	takes atomic.Int64
}

func (s *countingStore) Take(ctx context.Context, id string, after uint64, n int, buf []broker.Stored) ([]broker.Stored, error) {
	s.takes.Add(1)
	return s.MemoryStore.Take(ctx, id, after, n, buf)
}

func (s *countingStore) Written(ctx context.Context, id string, seq uint64) error {
	s.takes.Add(1)
	return s.MemoryStore.Written(ctx, id, seq)
}

// thinBackplane drops the messages from wakes while thin is set, as a
// backplane of an older node would not carry them.
type thinBackplane struct {
	*broker.MemoryBackplane
	thin atomic.Bool
}

func (b *thinBackplane) Publish(ctx context.Context, ev broker.Event) error {
	if b.thin.Load() && ev.Kind == broker.EventWake {
		ev.Type, ev.Body = "", nil
	}
	return b.MemoryBackplane.Publish(ctx, ev)
}

// TestStoredMessagesHandedOverLocally: with a Store, what a node stored for
// a session it serves itself is handed out without reading it back from
// the store (nor what another node stored, which comes with its wake), in
// order and without gaps; a reader that does not acknowledge is not taken for a slow
// consumer as long as it reads.
func TestStoredMessagesHandedOverLocally(t *testing.T) {
	bp, st := &thinBackplane{MemoryBackplane: &broker.MemoryBackplane{}}, &countingStore{}
	const bound = 16
	opts := broker.Options{MailboxMessages: bound}
	n1, n2 := clusterNode(t, "n1", bp, st, opts), clusterNode(t, "n2", bp, st, opts)
	ctx := context.Background()
	bob, alice, carol := joinOn(t, n1, "bob"), joinOn(t, n1, "alice"), joinOn(t, n2, "carol")
	time.Sleep(20 * time.Millisecond)
	att := bob.Session.Attach()
	after := bob.After
	next, total := 0, 0 // the next candidate bob should read; candidates sent
	read := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			frames, last, err := att.Take(after)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("bob read up to c%d, then nothing", next-1)
				}
				if next == total {
					return
				}
				time.Sleep(time.Millisecond)
				continue
			}
			for _, f := range frames {
				if strings.Contains(string(f), `"candidate":"c`) {
					want := fmt.Sprintf(`"c%d"`, next)
					if !strings.Contains(string(f), want) {
						t.Fatalf("bob wanted %s, read %s", want, f)
					}
					next++
				}
			}
			after = last
		}
	}
	send := func(from *broker.Joined, n int) {
		t.Helper()
		for range n {
			env := fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d"}}`, total)
			if err := from.Session.HandleRaw(ctx, []byte(env)); err != nil {
				t.Fatal(err)
			}
			total++
		}
	}
	read() // presence
	st.takes.Store(0)
	// Far past the bound, never acknowledged, from this node, each read as
	// it comes: read without the store, bar a written mark every quarter
	// of the bound.
	for range 10 * bound {
		send(alice, 1)
		read()
	}
	if bob.Session.Closed() {
		t.Fatal("a reader that does not acknowledge was ended")
	}
	if n := st.takes.Load(); n > 10*bound/(bound/4)+2 {
		t.Fatalf("%d store reads for %d messages", n, 10*bound)
	}
	// Messages from the other node come between, told of with their wakes:
	// still no reading back.
	st.takes.Store(0)
	for range 3 {
		send(alice, 2)
		send(carol, 3)
		send(alice, 2)
		read()
	}
	if n := st.takes.Load(); n > 3*7/(bound/4)+2 {
		t.Fatalf("%d store reads for %d messages", n, 3*7)
	}
	// Wakes without the message: the store fills the gaps.
	bp.thin.Store(true)
	for range 3 {
		send(alice, 2)
		send(carol, 3)
		send(alice, 2)
		read()
	}
	if next != 10*bound+42 {
		t.Fatalf("bob read %d candidates", next)
	}
}

// gatedStore holds Push for one session until its gate is opened.
type gatedStore struct {
	broker.MemoryStore
	session atomic.Value // string
	gate    chan struct{}
	entered chan struct{}
}

func (s *gatedStore) Push(ctx context.Context, ds []broker.Delivery) error {
	if v, _ := s.session.Load().(string); slices.ContainsFunc(ds, func(d broker.Delivery) bool { return d.Session == v }) {
		s.entered <- struct{}{}
		<-s.gate
	}
	return s.MemoryStore.Push(ctx, ds)
}

// TestMessageStoredWhileTakenOver: a message for a session on another node
// is stored just as this node takes the session over; the wake goes to the
// old node, yet the session here gets the message.
func TestMessageStoredWhileTakenOver(t *testing.T) {
	bp := &broker.MemoryBackplane{}
	st := &gatedStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	n1, n2 := clusterNode(t, "n1", bp, st, broker.Options{}), clusterNode(t, "n2", bp, st, broker.Options{})
	ctx := context.Background()
	alice, bob := joinOn(t, n1, "alice"), joinOn(t, n2, "bob")
	time.Sleep(20 * time.Millisecond)
	last := bob.Session.LastSeq()
	st.session.Store(bob.Session.Secret())
	sent := make(chan error, 1)
	go func() {
		sent <- alice.Session.HandleRaw(ctx, []byte(`{"type":"message","to":"bob","payload":"in between"}`))
	}()
	<-st.entered // alice's message is on its way into the store
	n2.Close(broker.ReasonKicked)
	resumed, err := n1.Join(ctx, broker.JoinRequest{Room: "r", Peer: "bob", Transport: "test",
		Resume: &broker.Resume{Session: bob.Session.Secret(), LastSeq: last}})
	if err != nil || !resumed.Resumed {
		t.Fatalf("resume on n1: %+v, %v", resumed, err)
	}
	st.session.Store("")
	close(st.gate)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	att := resumed.Session.Attach()
	deadline := time.Now().Add(2 * time.Second)
	for {
		frames, _, err := att.Take(last)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if strings.Contains(string(f), `"in between"`) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob never got the message stored while n1 took it over (got %q)", frames)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowEvents holds back the backplane's events of one kind while hold is
// set, as a node may hear of them late.
type slowEvents struct {
	*broker.MemoryBackplane
	kind broker.EventKind
	hold atomic.Bool
	mu   sync.Mutex
	held []broker.Event
}

func (b *slowEvents) Publish(ctx context.Context, ev broker.Event) error {
	if ev.Kind == b.kind && b.hold.Load() {
		b.mu.Lock()
		b.held = append(b.held, ev)
		b.mu.Unlock()
		return nil
	}
	return b.MemoryBackplane.Publish(ctx, ev)
}

// release publishes the events held back.
func (b *slowEvents) release(ctx context.Context) {
	b.hold.Store(false)
	b.mu.Lock()
	held := b.held
	b.held = nil
	b.mu.Unlock()
	for _, ev := range held {
		_ = b.MemoryBackplane.Publish(ctx, ev)
	}
}

// TestMessageStoredByTheOldNode: a node that has not yet heard that
// another took a session over stores a message for it as its own; the
// session on the new node still gets it. The old node's copy of the
// session then refuses envelopes with ErrSessionMoved, and looking the
// session up again takes it back.
func TestMessageStoredByTheOldNode(t *testing.T) {
	bp, st := &slowEvents{MemoryBackplane: &broker.MemoryBackplane{}, kind: broker.EventMoved}, &broker.MemoryStore{}
	n1, n2 := clusterNode(t, "n1", bp, st, broker.Options{}), clusterNode(t, "n2", bp, st, broker.Options{})
	ctx := context.Background()
	alice, bob := joinOn(t, n1, "alice"), joinOn(t, n1, "bob")
	bp.hold.Store(true)
	onN2, ok := n2.Session(bob.Session.Secret())
	if !ok || onN2 == bob.Session {
		t.Fatal("n2 did not take bob's session over")
	}
	last := onN2.LastSeq()
	att := onN2.Attach()
	// n1 still routes to its own copy of bob's session.
	if err := alice.Session.HandleRaw(ctx, []byte(`{"type":"message","to":"bob","payload":"late"}`)); err != nil {
		t.Fatal(err)
	}
	bp.release(ctx)
	deadline := time.Now().Add(2 * time.Second)
	for got := false; !got; {
		frames, _, err := att.Take(last)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			got = got || strings.Contains(string(f), `"late"`)
		}
		if !got && time.Now().After(deadline) {
			t.Fatalf("bob on n2 never got the message n1 stored (got %q)", frames)
		}
		time.Sleep(5 * time.Millisecond)
	}
	eventually(t, "n1 drops its copy of bob's session", bob.Session.Closed)
	err := bob.Session.HandleRaw(ctx, []byte(`{"type":"message","to":"alice","payload":"from n1"}`))
	if !errors.Is(err, broker.ErrSessionMoved) || !errors.Is(err, broker.ErrSessionClosed) {
		t.Fatalf("the old copy handled an envelope: %v", err)
	}
	back, ok := n1.Session(bob.Session.Secret())
	if !ok || back == bob.Session {
		t.Fatal("n1 did not take bob's session back")
	}
	if err := back.HandleRaw(ctx, []byte(`{"type":"message","to":"alice","payload":"from n1"}`)); err != nil {
		t.Fatal(err)
	}
}

// TestNoWordOfItself: a session taken over just after its join is not told
// of its own join by the event that comes late from the node that admitted it.
func TestNoWordOfItself(t *testing.T) {
	bp := &slowEvents{MemoryBackplane: &broker.MemoryBackplane{}, kind: broker.EventJoined}
	bp.hold.Store(true)
	st := &broker.MemoryStore{}
	n1, n2 := clusterNode(t, "n1", bp, st, broker.Options{}), clusterNode(t, "n2", bp, st, broker.Options{})
	alice, bob := joinOn(t, n2, "alice"), joinOn(t, n1, "bob")
	onN2, ok := n2.Session(bob.Session.Secret())
	if !ok {
		t.Fatal("n2 did not take bob's session over")
	}
	last := onN2.LastSeq()
	bp.release(context.Background())
	// alice hears of bob once, whichever way; bob hears nothing.
	time.Sleep(50 * time.Millisecond)
	att := onN2.Attach()
	if frames, _, _ := att.Take(last); len(frames) > 0 {
		t.Fatalf("bob was told %q", frames)
	}
	aatt := alice.Session.Attach()
	frames, _, _ := aatt.Take(alice.After)
	if len(frames) != 1 || !strings.Contains(string(frames[0]), `"peer-joined"`) {
		t.Fatalf("alice was told %q", frames)
	}
}

// pushCounting counts the deliveries pushed through a MemoryStore.
type pushCounting struct {
	broker.MemoryStore
	pushed atomic.Int64
}

func (s *pushCounting) Push(ctx context.Context, ds []broker.Delivery) error {
	s.pushed.Add(int64(len(ds)))
	return s.MemoryStore.Push(ctx, ds)
}

// TestWrappedStoreIsCalled: a Store that embeds a MemoryStore to change
// what it does is called for every message, those to sessions on this node
// included: the broker's shortcut into a MemoryStore's mailboxes is for a
// MemoryStore itself only.
func TestWrappedStoreIsCalled(t *testing.T) {
	st := &pushCounting{}
	b := clusterNode(t, "n1", &broker.MemoryBackplane{}, st, broker.Options{})
	alice, _ := joinOn(t, b, "alice"), joinOn(t, b, "bob")
	before := st.pushed.Load()
	if err := alice.Session.HandleRaw(context.Background(), []byte(`{"type":"message","to":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	if n := st.pushed.Load() - before; n != 1 {
		t.Fatalf("%d pushes through the wrapper for one message", n)
	}
}

// deadlineChecking records whether every call the broker makes to it
// carries a deadline.
type deadlineChecking struct {
	broker.MemoryBackplane
	calls, without atomic.Int64
}

func (bp *deadlineChecking) check(ctx context.Context) {
	bp.calls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		bp.without.Add(1)
	}
}

func (bp *deadlineChecking) Members(ctx context.Context, room string) ([]broker.Member, error) {
	bp.check(ctx)
	return bp.MemoryBackplane.Members(ctx, room)
}

func (bp *deadlineChecking) Publish(ctx context.Context, ev broker.Event) error {
	bp.check(ctx)
	return bp.MemoryBackplane.Publish(ctx, ev)
}

// TestRelayCallsHaveDeadlines: a transport that hands an envelope over
// with a context that never ends (WebSocket's read loop does) still gets
// no store or backplane call without a deadline, so a stalled Redis cannot
// hold the peer's reading for ever.
func TestRelayCallsHaveDeadlines(t *testing.T) {
	bp := &deadlineChecking{}
	b := clusterNode(t, "n1", bp, &broker.MemoryStore{}, broker.Options{})
	alice, _ := joinOn(t, b, "alice"), joinOn(t, b, "bob")
	for _, msg := range []string{`{"type":"message"}`, `{"type":"message","to":"bob"}`, `{"type":"message","to":"carol"}`} {
		_ = alice.Session.HandleRaw(context.Background(), []byte(msg))
	}
	if bp.calls.Load() == 0 {
		t.Fatal("no backplane call made: the test checks nothing")
	}
	if n := bp.without.Load(); n != 0 {
		t.Fatalf("%d of %d backplane calls without a deadline", n, bp.calls.Load())
	}
}
