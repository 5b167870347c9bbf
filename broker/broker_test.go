package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// recvTimeout bounds every wait for a frame that must come.
const recvTimeout = 5 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBroker returns a broker with opts (and a silent logger) that is closed
// when the test ends.
func newBroker(t *testing.T, opts broker.Options) *broker.Broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	b := broker.New(opts)
	t.Cleanup(func() { b.Close(broker.ReasonKicked) })
	return b
}

// wire is an envelope as a peer reads it.
type wire struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	Room    string          `json:"room"`
	From    string          `json:"from"`
	To      *string         `json:"to"`
	Seq     uint64          `json:"seq"`
	Payload json.RawMessage `json:"payload"`
	raw     []byte
}

type welcomePayload struct {
	Peer    string `json:"peer"`
	Session string `json:"session"`
	Peers   []struct {
		Peer string          `json:"peer"`
		Meta json.RawMessage `json:"meta"`
	} `json:"peers"`
	Resumed bool `json:"resumed"`
}

type errorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

// client is one peer of a test, speaking to its session directly with no
// transport: it reads with Receive and checks that seqs have no gaps.
type client struct {
	t      *testing.T
	s      *broker.Session
	att    *broker.Attachment
	after  uint64 // the last seq taken
	queue  [][]byte
	peer   string
	joined *broker.Joined
}

func parse(t *testing.T, data []byte) wire {
	t.Helper()
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("broker wrote %q: %v", data, err)
	}
	w.raw = data
	return w
}

// join admits peer to room on b, attaches a connection and checks the welcome.
func join(t *testing.T, b *broker.Broker, room, peer string, meta ...string) *client {
	t.Helper()
	req := broker.JoinRequest{Room: room, Peer: peer, Transport: "test"}
	if len(meta) > 0 {
		req.Meta = json.RawMessage(meta[0])
	}
	j, err := b.Join(context.Background(), req)
	if err != nil {
		t.Fatalf("join %s/%s: %v", room, peer, err)
	}
	c := &client{t: t, s: j.Session, joined: j, peer: j.Session.Peer(), after: j.After}
	c.att = j.Session.Attach()
	w := parse(t, j.Welcome)
	if w.Type != broker.TypeWelcome || w.Seq != 1 || w.Room != room || j.After != 1 || j.Resumed {
		t.Fatalf("welcome %s, After %d", j.Welcome, j.After)
	}
	return c
}

func (c *client) welcome() welcomePayload {
	c.t.Helper()
	var p welcomePayload
	if err := json.Unmarshal(parse(c.t, c.joined.Welcome).Payload, &p); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// next returns the next frame for the peer, waiting for it.
func (c *client) next() wire {
	c.t.Helper()
	if len(c.queue) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
		defer cancel()
		frames, last, err := c.s.Receive(ctx, c.after)
		if err != nil {
			c.t.Fatalf("%s: receive after %d: %v", c.peer, c.after, err)
		}
		if len(frames) == 0 {
			c.t.Fatalf("%s: nothing arrived after seq %d", c.peer, c.after)
		}
		c.queue = frames
		c.after = last
	}
	data := c.queue[0]
	c.queue = c.queue[1:]
	return parse(c.t, data)
}

// expect returns the next frame, which must be of type typ.
func (c *client) expect(typ string) wire {
	c.t.Helper()
	w := c.next()
	if w.Type != typ {
		c.t.Fatalf("%s: got %s, want a %s", c.peer, w.raw, typ)
	}
	return w
}

// expectError returns the next frame's error payload; it must have code and ref.
func (c *client) expectError(code broker.Code, ref string) errorPayload {
	c.t.Helper()
	w := c.expect(broker.TypeError)
	var p errorPayload
	if err := json.Unmarshal(w.Payload, &p); err != nil {
		c.t.Fatal(err)
	}
	if p.Code != string(code) || p.Ref != ref || p.Message == "" {
		c.t.Fatalf("%s: error %s, want code %s ref %q", c.peer, w.raw, code, ref)
	}
	return p
}

// quiet checks that nothing arrives for the peer for a little while.
func (c *client) quiet() {
	c.t.Helper()
	if len(c.queue) > 0 {
		c.t.Fatalf("%s: unexpected %s", c.peer, c.queue[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	frames, _, err := c.s.Receive(ctx, c.after)
	if err != nil || len(frames) > 0 {
		c.t.Fatalf("%s: unexpected %q, %v", c.peer, frames, err)
	}
}

// send hands the broker one envelope from the peer, as its transport would.
func (c *client) send(raw string) error {
	c.t.Helper()
	return c.s.HandleRaw(context.Background(), []byte(raw))
}

func (c *client) mustSend(raw string) {
	c.t.Helper()
	if err := c.send(raw); err != nil {
		c.t.Fatalf("%s: send %s: %v", c.peer, raw, err)
	}
}

// pending reads what s has after seq after now, as a connection would,
// without waiting for more.
func pending(s *broker.Session, after uint64) ([][]byte, uint64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Receive(ctx, after)
}

// eventually waits for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(recvTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func peerLeft(t *testing.T, c *client, peer, reason string) {
	t.Helper()
	w := c.expect(broker.TypePeerLeft)
	want := fmt.Sprintf(`{"peer":%q,"reason":%q}`, peer, reason)
	if string(w.Payload) != want {
		t.Fatalf("%s: peer-left %s, want payload %s", c.peer, w.raw, want)
	}
}

func TestJoinWelcome(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice", `{"name":"Alice"}`)
	wa := alice.welcome()
	if wa.Peer != "alice" || wa.Session != alice.s.Secret() || len(wa.Peers) != 0 || wa.Resumed {
		t.Fatalf("alice's welcome: %s", alice.joined.Welcome)
	}
	if len(wa.Session) < 32 {
		t.Fatalf("session secret %q is shorter than 128 bits of hex", wa.Session)
	}
	// The welcome is also the mailbox's seq 1.
	frames, last, err := pending(alice.s, 0)
	if err != nil || last != 1 || len(frames) != 1 || string(frames[0]) != string(alice.joined.Welcome) {
		t.Fatalf("pending(0) = %q, %d, %v; want the welcome", frames, last, err)
	}

	bob := join(t, b, "demo", "bob")
	wb := bob.welcome()
	if wb.Peer != "bob" || len(wb.Peers) != 1 || wb.Peers[0].Peer != "alice" || string(wb.Peers[0].Meta) != `{"name":"Alice"}` {
		t.Fatalf("bob's welcome: %s", bob.joined.Welcome)
	}
	if wb.Session == wa.Session {
		t.Fatal("two sessions share a secret")
	}
	pj := alice.expect(broker.TypePeerJoined)
	if pj.Seq != 2 || pj.Room != "demo" || string(pj.Payload) != `{"peer":"bob"}` {
		t.Fatalf("peer-joined %s", pj.raw)
	}
	bob.quiet()

	// A peer id is unique within its room, not across rooms.
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "alice"}); codeOf(err) != broker.CodePeerIDTaken {
		t.Fatalf("second alice in demo: %v, want peer-id-taken", err)
	}
	join(t, b, "other", "alice")

	// No peer id: the broker picks one.
	anon := join(t, b, "demo", "")
	if !broker.ValidID(anon.peer) || anon.peer == "alice" || anon.peer == "bob" {
		t.Fatalf("random peer id %q", anon.peer)
	}
	if got := alice.expect(broker.TypePeerJoined); !strings.Contains(string(got.Payload), anon.peer) {
		t.Fatalf("peer-joined %s", got.raw)
	}
	if b.Sessions() != 4 {
		t.Fatalf("Sessions() = %d, want 4", b.Sessions())
	}
	if s, ok := b.Session(alice.s.Secret()); !ok || s != alice.s {
		t.Fatal("Session(secret) does not find alice")
	}
}

func codeOf(err error) broker.Code {
	var pe *broker.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err == nil {
		return ""
	}
	return "not a *broker.Error: " + broker.Code(err.Error())
}

func TestJoinRefusals(t *testing.T) {
	b := newBroker(t, broker.Options{MaxPeersPerRoom: 2})
	cases := []struct {
		req  broker.JoinRequest
		code broker.Code
	}{
		{broker.JoinRequest{Room: ""}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "a room"}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Peer: "bad peer"}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Peer: strings.Repeat("p", 65)}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Meta: json.RawMessage(`"text"`)}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Meta: json.RawMessage(`[1]`)}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Meta: json.RawMessage(`{"a":"` + strings.Repeat("m", 1100) + `"}`)}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "r", Resume: &broker.Resume{Session: "nosuch"}}, broker.CodeSessionExpired},
	}
	for _, c := range cases {
		if _, err := b.Join(context.Background(), c.req); codeOf(err) != c.code {
			t.Errorf("Join(%+v): %v, want %s", c.req, err, c.code)
		}
	}
	if b.Sessions() != 0 {
		t.Fatalf("refused joins left %d sessions", b.Sessions())
	}
	join(t, b, "full", "a")
	join(t, b, "full", "b")
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "full", Peer: "c"}); codeOf(err) != broker.CodeRoomFull {
		t.Fatalf("third peer in a room of 2: %v, want room-full", err)
	}
	if b.Sessions() != 2 {
		t.Fatalf("Sessions() = %d after a refused join, want 2", b.Sessions())
	}
}

func TestRelay(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)

	offer := `{"type":"offer","sdp":"v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\n"}`
	// from is the broker's to write; seq too; room is ignored off join.
	alice.mustSend(`{"type":"offer","id":"o1","to":"bob","from":"mallory","seq":99,"room":"elsewhere","payload":` + offer + `}`)
	w := bob.expect(broker.TypeOffer)
	if w.From != "alice" || w.Room != "demo" || w.To == nil || *w.To != "bob" || w.Seq != 2 || string(w.Payload) != offer {
		t.Fatalf("relayed offer %s", w.raw)
	}
	if strings.Contains(string(w.raw), `"id"`) || strings.Contains(string(w.raw), "mallory") {
		t.Fatalf("relayed offer carries the sender's id or forged from: %s", w.raw)
	}
	for i, p := range []string{`{"candidate":"c1","sdpMid":"0","sdpMLineIndex":0}`, `null`, `{"candidate":"c2"}`} {
		alice.mustSend(`{"type":"candidate","to":"bob","payload":` + p + `}`)
		w := bob.expect(broker.TypeCandidate)
		if string(w.Payload) != p || w.Seq != uint64(3+i) {
			t.Fatalf("candidate %d: %s", i, w.raw)
		}
	}
	bob.mustSend(`{"type":"answer","to":"alice","payload":{"type":"answer","sdp":"v=0"}}`)
	if w := alice.expect(broker.TypeAnswer); w.From != "bob" || w.Seq != 3 {
		t.Fatalf("answer %s", w.raw)
	}
	// No payload stays no payload.
	bob.mustSend(`{"type":"bye","to":"alice"}`)
	if w := alice.expect(broker.TypeBye); strings.Contains(string(w.raw), "payload") {
		t.Fatalf("bye without payload relayed as %s", w.raw)
	}
	// A peer cannot send to itself.
	if err := alice.send(`{"type":"message","id":"self","to":"alice"}`); codeOf(err) != broker.CodeBadRequest {
		t.Fatalf("message to self: %v", err)
	}
	alice.expectError(broker.CodeBadRequest, "self")
	// A bad envelope is refused in the stream with its ref.
	if err := alice.send(`{"type":"offer","id":"x1"}`); codeOf(err) != broker.CodeBadRequest {
		t.Fatalf("offer without to: %v", err)
	}
	alice.expectError(broker.CodeBadRequest, "x1")
	if err := alice.send(`not json`); codeOf(err) != broker.CodeBadRequest {
		t.Fatalf("not json: %v", err)
	}
	alice.expectError(broker.CodeBadRequest, "")
	// A second join on a joined session is refused.
	if err := alice.send(`{"type":"join","id":"j2","room":"demo"}`); codeOf(err) != broker.CodeBadRequest {
		t.Fatalf("second join: %v", err)
	}
	alice.expectError(broker.CodeBadRequest, "j2")
	bob.quiet()
}

func TestRelayIsolation(t *testing.T) {
	b := newBroker(t, broker.Options{OfflineHold: 20 * time.Millisecond})
	a1 := join(t, b, "one", "alice")
	b1 := join(t, b, "one", "bob")
	a1.expect(broker.TypePeerJoined)
	b2 := join(t, b, "two", "bob")
	a1.mustSend(`{"type":"message","payload":"to all in one"}`)
	a1.mustSend(`{"type":"message","to":"bob","payload":"to bob in one"}`)
	b1.expect(broker.TypeMessage)
	if w := b1.expect(broker.TypeMessage); string(w.Payload) != `"to bob in one"` {
		t.Fatalf("%s", w.raw)
	}
	b2.quiet()
}

func TestBroadcast(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	carol := join(t, b, "demo", "carol")
	alice.expect(broker.TypePeerJoined)
	alice.expect(broker.TypePeerJoined)
	bob.expect(broker.TypePeerJoined)

	alice.mustSend(`{"type":"message","payload":{"chat":"hello, all"}}`)
	for _, c := range []*client{bob, carol} {
		w := c.expect(broker.TypeMessage)
		if w.From != "alice" || w.To != nil || string(w.Payload) != `{"chat":"hello, all"}` {
			t.Fatalf("%s got broadcast %s", c.peer, w.raw)
		}
	}
	alice.quiet()
	// A payload of null arrives as null.
	alice.mustSend(`{"type":"message","payload":null}`)
	for _, c := range []*client{bob, carol} {
		if w := c.expect(broker.TypeMessage); string(w.Payload) != "null" || !strings.Contains(string(w.raw), `"payload":null`) {
			t.Fatalf("%s got %s", c.peer, w.raw)
		}
	}
}

func TestOrderNoGaps(t *testing.T) {
	// The mailbox holds everything, so that the sender may run ahead of the reader.
	b := newBroker(t, broker.Options{Rate: -1, MailboxMessages: 4096})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			_ = alice.s.HandleRaw(context.Background(), []byte(fmt.Sprintf(`{"type":"candidate","to":"bob","payload":{"candidate":"c%d"}}`, i)))
		}
	}()
	for i := 0; i < n; i++ {
		w := bob.expect(broker.TypeCandidate)
		if w.Seq != uint64(i+2) || string(w.Payload) != fmt.Sprintf(`{"candidate":"c%d"}`, i) {
			t.Fatalf("candidate %d: %s", i, w.raw)
		}
		if i%32 == 31 {
			if err := bob.s.Ack(w.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	<-done
	if bob.s.Closed() {
		t.Fatal("a reader that keeps up was ended")
	}
}

func TestPingPong(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	alice.mustSend(`{"type":"ping","payload":{"t":12345}}`)
	w := alice.expect(broker.TypePong)
	if w.Seq != 0 || string(w.Payload) != `{"t":12345}` || w.From != "" {
		t.Fatalf("pong %s", w.raw)
	}
	alice.mustSend(`{"type":"ping"}`)
	if w := alice.expect(broker.TypePong); strings.Contains(string(w.raw), "payload") {
		t.Fatalf("pong to a ping without payload: %s", w.raw)
	}
	// A pong takes no seq: the next sequenced frame goes on from the last.
	bob := join(t, b, "demo", "bob")
	_ = bob
	if w := alice.expect(broker.TypePeerJoined); w.Seq != 2 {
		t.Fatalf("peer-joined after pongs: %s", w.raw)
	}
}

func TestAck(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	if err := alice.send(`{"type":"ack","payload":{"seq":2}}`); err != nil {
		t.Fatalf("ack 2: %v", err)
	}
	if err := alice.send(`{"type":"ack","id":"a9","payload":{"seq":9}}`); codeOf(err) != broker.CodeBadRequest {
		t.Fatalf("ack beyond last: %v", err)
	}
	alice.expectError(broker.CodeBadRequest, "a9")
	for i, bad := range []string{`{"type":"ack"}`, `{"type":"ack","payload":{}}`, `{"type":"ack","payload":{"seq":-1}}`,
		`{"type":"ack","payload":"3"}`, `{"type":"ack","payload":{"seq":null}}`, `{"type":"ack","payload":{"seq":1.5}}`} {
		id := fmt.Sprintf("b%d", i)
		bad = strings.Replace(bad, `{"type":"ack"`, `{"type":"ack","id":"`+id+`"`, 1)
		if err := alice.send(bad); codeOf(err) != broker.CodeBadRequest {
			t.Fatalf("%s: %v", bad, err)
		}
		alice.expectError(broker.CodeBadRequest, id)
	}
	if alice.s.Closed() {
		t.Fatal("a refused ack ended the session")
	}
}

func TestLeave(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	bob.mustSend(`{"type":"leave"}`)
	peerLeft(t, alice, "bob", broker.ReasonLeave)
	if !bob.s.Closed() {
		t.Fatal("bob's session is open after leave")
	}
	if err := bob.send(`{"type":"ping"}`); !errors.Is(err, broker.ErrSessionClosed) {
		t.Fatalf("send after leave: %v, want ErrSessionClosed", err)
	}
	// What was queued is still handed out, then the session says it ended.
	if _, _, err := pending(bob.s, bob.after); !errors.Is(err, broker.ErrSessionClosed) {
		t.Fatalf("Pending after leave: %v", err)
	}
	// Its peer id is free again; a resume of it is refused.
	join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: bob.s.Secret()}}); codeOf(err) != broker.CodeSessionExpired {
		t.Fatalf("resume of a session that left: %v", err)
	}
	if b.Sessions() != 2 {
		t.Fatalf("Sessions() = %d, want 2", b.Sessions())
	}
}

func TestCloseIdempotent(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	bob.s.Close(broker.ReasonKicked)
	bob.s.Close(broker.ReasonLeave)
	bob.s.Close(broker.ReasonTimeout)
	peerLeft(t, alice, "bob", broker.ReasonKicked)
	alice.quiet()
	if b.Sessions() != 1 {
		t.Fatalf("Sessions() = %d after closing one of two, want 1", b.Sessions())
	}
	b.Close(broker.ReasonKicked)
	b.Close(broker.ReasonKicked)
	if !alice.s.Closed() || b.Sessions() != 0 {
		t.Fatalf("after Broker.Close: alice closed %v, sessions %d", alice.s.Closed(), b.Sessions())
	}
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "carol"}); err == nil {
		t.Fatal("a closed broker admitted a join")
	}
	// Attaching to an ended session gives an attachment that is gone at once.
	select {
	case <-alice.s.Attach().Gone():
	default:
		t.Fatal("an attachment to an ended session is not gone")
	}
}

func TestOfflineHoldDelivers(t *testing.T) {
	b := newBroker(t, broker.Options{OfflineHold: 2 * time.Second})
	alice := join(t, b, "demo", "alice")
	alice.mustSend(`{"type":"offer","id":"o1","to":"carol","payload":{"type":"offer","sdp":"x"}}`)
	alice.mustSend(`{"type":"message","id":"m1","to":"carol","payload":2}`)
	carol := join(t, b, "demo", "carol")
	w := carol.expect(broker.TypeOffer)
	if w.Seq != 2 || w.From != "alice" || string(w.Payload) != `{"type":"offer","sdp":"x"}` {
		t.Fatalf("held offer %s", w.raw)
	}
	if w := carol.expect(broker.TypeMessage); w.Seq != 3 || string(w.Payload) != "2" {
		t.Fatalf("held message %s", w.raw)
	}
	alice.expect(broker.TypePeerJoined)
	alice.quiet()
}

func TestOfflineHoldExpires(t *testing.T) {
	b := newBroker(t, broker.Options{OfflineHold: 30 * time.Millisecond})
	alice := join(t, b, "demo", "alice")
	start := time.Now()
	alice.mustSend(`{"type":"offer","id":"o1","to":"carol","payload":{}}`)
	alice.mustSend(`{"type":"message","to":"carol","payload":{}}`)
	// The two holds expire on their own timers: their errors may come in either order.
	refs := map[string]bool{}
	for i := 0; i < 2; i++ {
		w := alice.expect(broker.TypeError)
		var p errorPayload
		_ = json.Unmarshal(w.Payload, &p)
		if p.Code != string(broker.CodePeerUnavailable) {
			t.Fatalf("%s, want peer-unavailable", w.raw)
		}
		refs[p.Ref] = true
	}
	if !refs["o1"] || !refs[""] {
		t.Fatalf("peer-unavailable refs %v, want o1 and none", refs)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("peer-unavailable after %v, before the offline hold passed", d)
	}
	// Too late: carol does not get it.
	carol := join(t, b, "demo", "carol")
	carol.quiet()
}

func TestOfflineHoldSenderLeft(t *testing.T) {
	b := newBroker(t, broker.Options{OfflineHold: 20 * time.Millisecond})
	alice := join(t, b, "demo", "alice")
	alice.mustSend(`{"type":"message","id":"m1","to":"carol"}`)
	alice.s.Close(broker.ReasonLeave)
	time.Sleep(60 * time.Millisecond) // the hold expires with its sender gone: nothing breaks
	if n := b.Sessions(); n != 0 {
		t.Fatalf("Sessions() = %d", n)
	}
}

func TestResume(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined) // seq 2
	alice.att.Detach()                  // alice's connection drops
	for i := 0; i < 5; i++ {
		bob.mustSend(fmt.Sprintf(`{"type":"message","to":"alice","payload":%d}`, i)) // seqs 3..7
	}
	// Alice had taken seq 4 before her connection dropped.
	j, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "alice", Transport: "other",
		Resume: &broker.Resume{Session: alice.s.Secret(), LastSeq: 4}})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !j.Resumed || j.Session != alice.s || j.After != 4 {
		t.Fatalf("resume: %+v", j)
	}
	w := parse(t, j.Welcome)
	var p welcomePayload
	_ = json.Unmarshal(w.Payload, &p)
	if w.Type != broker.TypeWelcome || w.Seq != 0 || !p.Resumed || p.Session != alice.s.Secret() || p.Peer != "alice" ||
		len(p.Peers) != 1 || p.Peers[0].Peer != "bob" {
		t.Fatalf("resumed welcome %s", j.Welcome)
	}
	if alice.s.Transport() != "other" {
		t.Fatalf("transport %q after resume", alice.s.Transport())
	}
	alice.att = alice.s.Attach()
	alice.after, alice.queue = j.After, nil
	for i := 2; i < 5; i++ {
		w := alice.expect(broker.TypeMessage)
		if w.Seq != uint64(i+3) || string(w.Payload) != fmt.Sprint(i) {
			t.Fatalf("after resume: %s, want message %d with seq %d", w.raw, i, i+3)
		}
	}
	alice.quiet()
	bob.quiet() // no peer-left or peer-joined for a resumed session

	// Refused resumes.
	cases := []struct {
		req  broker.JoinRequest
		code broker.Code
	}{
		{broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: alice.s.Secret(), LastSeq: 99}}, broker.CodeBadRequest},
		{broker.JoinRequest{Room: "other", Resume: &broker.Resume{Session: alice.s.Secret()}}, broker.CodeSessionExpired},
		{broker.JoinRequest{Room: "demo", Peer: "bob", Resume: &broker.Resume{Session: alice.s.Secret()}}, broker.CodeSessionExpired},
		{broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: alice.s.Secret()[:31]}}, broker.CodeSessionExpired},
		{broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: ""}}, broker.CodeSessionExpired},
	}
	for _, c := range cases {
		if _, err := b.Join(context.Background(), c.req); codeOf(err) != c.code {
			t.Errorf("Join(%+v): %v, want %s", c.req, err, c.code)
		}
	}
	if alice.s.Closed() {
		t.Fatal("a refused resume ended the session")
	}
}

func TestResumeSupersedes(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	old := alice.att
	j, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: alice.s.Secret(), LastSeq: 1}})
	if err != nil {
		t.Fatal(err)
	}
	att := j.Session.Attach()
	select {
	case <-old.Gone():
	case <-time.After(recvTimeout):
		t.Fatal("the older connection was not superseded")
	}
	old.Detach() // the old connection's Detach must not start the linger clock
	time.Sleep(10 * time.Millisecond)
	if alice.s.Closed() {
		t.Fatal("a superseded connection's Detach ended the session")
	}
	att.Detach()
}

func TestResumeForgotten(t *testing.T) {
	b := newBroker(t, broker.Options{MailboxMessages: 4})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	for i := 0; i < 6; i++ {
		bob.mustSend(fmt.Sprintf(`{"type":"message","to":"alice","payload":%d}`, i))
		alice.next() // written to alice's connection, never acknowledged
	}
	// seqs 1..8 were given; the mailbox kept the last 4 (5..8): resuming from 2 needs 3.
	_, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: alice.s.Secret(), LastSeq: 2}})
	if codeOf(err) != broker.CodeSessionExpired {
		t.Fatalf("resume from a forgotten seq: %v, want session-expired", err)
	}
	if _, _, err := pending(alice.s, 2); codeOf(err) != broker.CodeSessionExpired && !errors.Is(err, broker.ErrSessionClosed) {
		t.Fatalf("pending(2): %v", err)
	}
}

func TestLingerTimeout(t *testing.T) {
	b := newBroker(t, broker.Options{ResumeWindow: 40 * time.Millisecond})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	time.Sleep(80 * time.Millisecond) // attached: the window does not run
	if bob.s.Closed() {
		t.Fatal("an attached session timed out")
	}
	start := time.Now()
	bob.att.Detach()
	peerLeft(t, alice, "bob", broker.ReasonTimeout)
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("session ended %v after its connection dropped, before its window", d)
	}
	if !bob.s.Closed() {
		t.Fatal("bob's session is open after its window")
	}
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Resume: &broker.Resume{Session: bob.s.Secret(), LastSeq: 1}}); codeOf(err) != broker.CodeSessionExpired {
		t.Fatalf("resume after the window: %v", err)
	}
}

func TestLingerPerJoin(t *testing.T) {
	b := newBroker(t, broker.Options{})
	alice := join(t, b, "demo", "alice")
	// A session never attached waits its linger for a connection, then ends.
	j, err := b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "bob", Linger: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	alice.expect(broker.TypePeerJoined)
	peerLeft(t, alice, "bob", broker.ReasonTimeout)
	if !j.Session.Closed() {
		t.Fatal("an unattached session outlived its linger")
	}
	// A reattach within the window cancels the timeout.
	j, err = b.Join(context.Background(), broker.JoinRequest{Room: "demo", Peer: "carol", Linger: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	alice.expect(broker.TypePeerJoined)
	time.Sleep(20 * time.Millisecond)
	att := j.Session.Attach()
	time.Sleep(100 * time.Millisecond)
	if j.Session.Closed() {
		t.Fatal("an attached session ended at its linger")
	}
	att.Detach()
	peerLeft(t, alice, "carol", broker.ReasonTimeout)
}

func TestSlowConsumer(t *testing.T) {
	b := newBroker(t, broker.Options{MailboxMessages: 8, Rate: -1})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob") // bob never calls Pending
	alice.expect(broker.TypePeerJoined)
	// bob's mailbox: welcome, 7 messages = 8; the 9th has nowhere to go.
	for i := 0; i < 8; i++ {
		if err := alice.send(fmt.Sprintf(`{"type":"message","to":"bob","payload":%d}`, i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	eventually(t, "bob is ended as a slow consumer", bob.s.Closed)
	peerLeft(t, alice, "bob", broker.ReasonTimeout)

	// Bob's connection, reading at last, gets everything, then slow-consumer last.
	var frames []wire
	after := uint64(0)
	for {
		fs, last, err := pending(bob.s, after)
		if errors.Is(err, broker.ErrSessionClosed) {
			break
		}
		if err != nil {
			t.Fatalf("pending(%d): %v", after, err)
		}
		for _, f := range fs {
			frames = append(frames, parse(t, f))
		}
		after = last
	}
	if len(frames) != 10 {
		t.Fatalf("bob got %d frames, want welcome, 8 messages and the error", len(frames))
	}
	for i, f := range frames {
		if f.Seq != uint64(i+1) {
			t.Fatalf("frame %d has seq %d: %s", i, f.Seq, f.raw)
		}
	}
	last := frames[len(frames)-1]
	var p errorPayload
	_ = json.Unmarshal(last.Payload, &p)
	if last.Type != broker.TypeError || p.Code != string(broker.CodeSlowConsumer) {
		t.Fatalf("last frame %s, want a slow-consumer error", last.raw)
	}
	alice.quiet()
	if alice.s.Closed() {
		t.Fatal("the sender was ended with the slow consumer")
	}
}

func TestRateLimit(t *testing.T) {
	b := newBroker(t, broker.Options{Rate: 0.001, Burst: 3})
	alice := join(t, b, "demo", "alice")
	for i := 0; i < 3; i++ {
		alice.mustSend(`{"type":"ping"}`)
		alice.expect(broker.TypePong)
	}
	err := alice.send(`{"type":"ping","id":"p4"}`)
	if codeOf(err) != broker.CodeRateLimited {
		t.Fatalf("fourth ping in a burst of 3: %v", err)
	}
	alice.expectError(broker.CodeRateLimited, "p4")
	if alice.s.Closed() {
		t.Fatal("rate-limited ended the session")
	}
	// A refused envelope's id is not remembered: its retry is not a duplicate.
	b2 := newBroker(t, broker.Options{Rate: 50, Burst: 1})
	bob := join(t, b2, "demo", "bob")
	bob.mustSend(`{"type":"ping","id":"x"}`)
	bob.expect(broker.TypePong)
	if err := bob.send(`{"type":"ping","id":"y"}`); codeOf(err) != broker.CodeRateLimited {
		t.Fatalf("second ping in a burst of 1: %v", err)
	}
	bob.expectError(broker.CodeRateLimited, "y")
	time.Sleep(60 * time.Millisecond) // the bucket refills
	bob.mustSend(`{"type":"ping","id":"y"}`)
	bob.expect(broker.TypePong)
}

func TestDedup(t *testing.T) {
	b := newBroker(t, broker.Options{DedupWindow: 100 * time.Millisecond})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	alice.mustSend(`{"type":"message","id":"m1","to":"bob","payload":1}`)
	alice.mustSend(`{"type":"message","id":"m1","to":"bob","payload":1}`) // a retry: dropped
	alice.mustSend(`{"type":"message","id":"m2","to":"bob","payload":2}`)
	alice.mustSend(`{"type":"message","to":"bob","payload":3}`) // no id: never a duplicate
	alice.mustSend(`{"type":"message","to":"bob","payload":3}`)
	for _, want := range []string{"1", "2", "3", "3"} {
		if w := bob.expect(broker.TypeMessage); string(w.Payload) != want {
			t.Fatalf("got %s, want payload %s", w.raw, want)
		}
	}
	bob.quiet()
	alice.quiet()
	// Ids are per peer: bob may use m1 too.
	bob.mustSend(`{"type":"message","id":"m1","to":"alice","payload":"b"}`)
	alice.expect(broker.TypeMessage)
	// After the window, the same id is new again.
	time.Sleep(150 * time.Millisecond)
	alice.mustSend(`{"type":"message","id":"m1","to":"bob","payload":4}`)
	if w := bob.expect(broker.TypeMessage); string(w.Payload) != "4" {
		t.Fatalf("after the dedup window: %s", w.raw)
	}
}

func TestDedupManyIDs(t *testing.T) {
	b := newBroker(t, broker.Options{Rate: -1})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	const n = 600 // past the point where old ids are swept
	for i := 0; i < n; i++ {
		alice.mustSend(fmt.Sprintf(`{"type":"message","id":"m%d","to":"bob","payload":%d}`, i, i))
		if i%32 == 0 {
			for bob.after < uint64(i+2) {
				bob.next()
			}
			_ = bob.s.Ack(bob.after)
		}
	}
	for i := 0; i < n; i++ {
		alice.mustSend(fmt.Sprintf(`{"type":"message","id":"m%d","to":"bob","payload":%d}`, i, i))
	}
	if bob.s.LastSeq() != uint64(n+1) {
		t.Fatalf("bob's last seq %d: retries within the window were relayed (want %d)", bob.s.LastSeq(), n+1)
	}
}

func TestMaxSessions(t *testing.T) {
	b := newBroker(t, broker.Options{MaxSessions: 2})
	a := join(t, b, "r1", "a")
	join(t, b, "r2", "b")
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "r3", Peer: "c"}); codeOf(err) != broker.CodeRateLimited {
		t.Fatalf("a third session on a node of 2: %v, want rate-limited", err)
	}
	if b.Sessions() != 2 {
		t.Fatalf("Sessions() = %d", b.Sessions())
	}
	a.s.Close(broker.ReasonLeave)
	c := join(t, b, "r3", "c")
	// A resume is not a new session.
	if _, err := b.Join(context.Background(), broker.JoinRequest{Room: "r3", Peer: "c", Resume: &broker.Resume{Session: c.s.Secret(), LastSeq: 1}}); err != nil {
		t.Fatalf("resume at the session limit: %v", err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		b := broker.New(broker.Options{Logger: quietLogger(), ResumeWindow: 20 * time.Millisecond,
			OfflineHold: 10 * time.Millisecond, MailboxMessages: 4, Rate: -1})
		ctx := context.Background()
		var sessions []*broker.Session
		for i := 0; i < 20; i++ {
			j, err := b.Join(ctx, broker.JoinRequest{Room: fmt.Sprintf("r%d", i%3), Peer: fmt.Sprintf("p%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, j.Session)
		}
		for i, s := range sessions {
			att := s.Attach()
			_ = s.HandleRaw(ctx, []byte(`{"type":"message","payload":"hi"}`))
			_ = s.HandleRaw(ctx, []byte(`{"type":"message","to":"nobody","payload":"held"}`))
			_ = s.HandleRaw(ctx, []byte(`{"type":"ping"}`))
			if i%2 == 0 {
				att.Detach()
			}
			wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
			_, _, _ = s.Receive(wctx, 0)
			cancel()
		}
		sessions[0].Close(broker.ReasonLeave)
		time.Sleep(50 * time.Millisecond) // holds expire, windows pass, slow consumers end
		b.Close(broker.ReasonKicked)
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		time.Sleep(10 * time.Millisecond)
		now := runtime.NumGoroutine()
		if now <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after the broker closed:\n%s", before, now, buf[:runtime.Stack(buf, true)])
		}
	}
}

// TestJoinRefusesMetaThatIsNotJSON checks that Join refuses a meta that is
// not valid JSON, as it refuses one that is not an object: a caller of the
// Go API may build a JoinRequest without ParseJoin, and a broken meta would
// break the welcome and peer-joined of every other peer in the room.
func TestJoinRefusesMetaThatIsNotJSON(t *testing.T) {
	b := newBroker(t, broker.Options{})
	for _, meta := range []string{`{oops`, `{"a":1`, `{"a":1}}`, `{"a":1} x`} {
		j, err := b.Join(context.Background(), broker.JoinRequest{Room: "r", Peer: "a", Meta: json.RawMessage(meta)})
		if err == nil {
			bob := join(t, b, "r", "bob")
			t.Errorf("meta %q admitted; the next peer's welcome is %s", meta, bob.joined.Welcome)
			bob.s.Close(broker.ReasonLeave)
			j.Session.Close(broker.ReasonLeave)
			continue
		}
		if codeOf(err) != broker.CodeBadRequest {
			t.Errorf("meta %q: %v, want bad-request", meta, err)
		}
	}
}

// A connection that was cut can still be handing the broker what it read
// while the resumed connection resends the same envelopes: each is relayed
// once, and in the order sent, whichever connection gets there first.
func TestRetriesFromTwoConnectionsKeepOrder(t *testing.T) {
	const n = 2000
	b := newBroker(t, broker.Options{Rate: -1, MailboxMessages: 2 * n, MailboxBytes: 1 << 20})
	alice := join(t, b, "demo", "alice")
	bob := join(t, b, "demo", "bob")
	alice.expect(broker.TypePeerJoined)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				raw := fmt.Sprintf(`{"type":"message","id":"m%d","to":"bob","payload":%d}`, i, i)
				if err := alice.s.HandleRaw(context.Background(), []byte(raw)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range n {
		w := bob.expect(broker.TypeMessage)
		if string(w.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %s", i, w.Payload)
		}
	}
	wg.Wait()
	bob.quiet()
}

// TestUnknownTransport: a transport name nobody registered is refused with
// ErrUnknownTransport, which names it.
func TestUnknownTransport(t *testing.T) {
	for _, err := range []error{
		func() error {
			_, err := broker.NewTransport("no-such-transport", nil, broker.TransportOptions{})
			return err
		}(),
		func() error { _, err := broker.NewTransportConfig("no-such-transport"); return err }(),
	} {
		if !errors.Is(err, broker.ErrUnknownTransport) || !strings.Contains(err.Error(), `"no-such-transport"`) {
			t.Fatalf("got %v, want ErrUnknownTransport naming the transport", err)
		}
	}
}
