// Package brokertest is the conformance kit for Switchboard transport
// adapters, in the manner of x/net/nettest: give Run a way to start the
// adapter under test and to dial it, and it runs the protocol's behaviours
// (docs/protocol.md) against it over the adapter's real wire: join and
// leave, relaying byte for byte, order under 1,000 trickled candidates, room
// isolation, refusals, limits, resume, the offline hold and slow consumers.
package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Conn is one peer's connection through the adapter under test.
type Conn interface {
	// Send writes one envelope's JSON. The first one sent is a join.
	Send(ctx context.Context, data []byte) error
	// Recv returns the next envelope's JSON from the broker, in order.
	Recv(ctx context.Context) ([]byte, error)
	// Drop ends the connection abruptly, without a leave, as a cut cable would.
	Drop() error
}

// Dialer opens a new connection to the adapter under test.
type Dialer func(ctx context.Context) (Conn, error)

// Harness starts the adapter under test.
type Harness struct {
	// Start starts a broker made with opts and the adapter in front of it,
	// for the duration of t, and returns a dialer for it.
	Start func(t *testing.T, opts broker.Options) Dialer
	// Unread makes a connection that stops reading at once: its peer
	// never takes its messages. Nil: Dial, and never call Recv.
	Unread Dialer
	// Skip names the behaviours (Run's subtest names) that cannot apply to
	// the adapter's wire, each with the reason, which the skip reports.
	Skip map[string]string
}

// Envelope is an envelope as a test reads it.
type Envelope struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Room    string          `json:"room,omitempty"`
	From    string          `json:"from,omitempty"`
	To      string          `json:"to,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Raw     []byte          `json:"-"`
}

// ErrorPayload is the payload of an error envelope.
type ErrorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

// Welcome is the payload of a welcome envelope.
type Welcome struct {
	Peer    string `json:"peer"`
	Session string `json:"session"`
	Peers   []struct {
		Peer string          `json:"peer"`
		Meta json.RawMessage `json:"meta"`
	} `json:"peers"`
	Resumed bool `json:"resumed"`
}

// Peer is a joined connection with the bookkeeping a test needs.
type Peer struct {
	t       *testing.T
	Conn    Conn
	Name    string
	Session string
	Last    uint64 // last seq received
}

const waitLimit = 10 * time.Second

// Join dials, joins room as peer (empty: let the broker choose) and reads the welcome.
func Join(t *testing.T, dial Dialer, room, peer string, extra ...string) (*Peer, Welcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	payload := map[string]any{}
	if peer != "" {
		payload["peer"] = peer
	}
	for i := 0; i+1 < len(extra); i += 2 {
		payload[extra[i]] = json.RawMessage(extra[i+1])
	}
	p := &Peer{t: t, Conn: c}
	p.send(ctx, map[string]any{"type": "join", "room": room, "payload": payload})
	env := p.Next()
	if env.Type != broker.TypeWelcome {
		t.Fatalf("join %s/%s: got %s, want welcome: %s", room, peer, env.Type, env.Raw)
	}
	var w Welcome
	if err := json.Unmarshal(env.Payload, &w); err != nil {
		t.Fatalf("welcome payload: %v", err)
	}
	p.Name, p.Session = w.Peer, w.Session
	t.Cleanup(func() { _ = c.Drop() })
	return p, w
}

func (p *Peer) send(ctx context.Context, v any) {
	p.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.Conn.Send(ctx, data); err != nil {
		p.t.Fatalf("%s: send: %v", p.Name, err)
	}
}

// Send writes v (marshalled to JSON, or raw when it is a []byte or string).
func (p *Peer) Send(v any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	switch raw := v.(type) {
	case []byte:
		if err := p.Conn.Send(ctx, raw); err != nil {
			p.t.Fatalf("%s: send: %v", p.Name, err)
		}
	case string:
		if err := p.Conn.Send(ctx, []byte(raw)); err != nil {
			p.t.Fatalf("%s: send: %v", p.Name, err)
		}
	default:
		p.send(ctx, v)
	}
}

// Next reads the next envelope, checking that its seq follows the last one.
func (p *Peer) Next() Envelope {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	data, err := p.Conn.Recv(ctx)
	if err != nil {
		p.t.Fatalf("%s: recv: %v", p.Name, err)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		p.t.Fatalf("%s: broker sent bad JSON %q: %v", p.Name, data, err)
	}
	env.Raw = data
	if env.V != broker.Version {
		p.t.Fatalf("%s: envelope without v:1: %s", p.Name, data)
	}
	switch {
	case env.Type == broker.TypePong:
		if env.Seq != 0 {
			p.t.Fatalf("pong with a seq: %s", data)
		}
	case env.Seq == 0 && (env.Type == broker.TypeWelcome || env.Type == broker.TypeError):
		// a resumed welcome carries no seq, nor does a refusal that the
		// transport answers itself (an HTTP body that is not JSON)
	case env.Seq != p.Last+1:
		p.t.Fatalf("%s: seq %d after %d: %s", p.Name, env.Seq, p.Last, data)
	default:
		p.Last = env.Seq
	}
	return env
}

// Expect reads envelopes, skipping peer-joined and peer-left, until one of
// type typ, and fails on any other type.
func (p *Peer) Expect(typ string) Envelope {
	p.t.Helper()
	for {
		env := p.Next()
		if env.Type == typ {
			return env
		}
		if env.Type != broker.TypePeerJoined && env.Type != broker.TypePeerLeft {
			p.t.Fatalf("%s: got %s, want %s: %s", p.Name, env.Type, typ, env.Raw)
		}
	}
}

// ExpectError reads until an error envelope and checks its code and ref.
func (p *Peer) ExpectError(code, ref string) ErrorPayload {
	p.t.Helper()
	env := p.Expect(broker.TypeError)
	var e ErrorPayload
	if err := json.Unmarshal(env.Payload, &e); err != nil {
		p.t.Fatalf("error payload: %v", err)
	}
	if e.Code != code || e.Ref != ref || e.Message == "" {
		p.t.Fatalf("%s: got error %+v, want code %s ref %q", p.Name, e, code, ref)
	}
	return e
}

// Ack acknowledges everything received so far.
func (p *Peer) Ack() {
	p.t.Helper()
	p.Send(map[string]any{"type": "ack", "payload": map[string]any{"seq": p.Last}})
}

// Run runs the conformance suite against the adapter h starts.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"JoinAndWelcome", testJoin},
		{"RelayByteForByte", testRelay},
		{"FromIsStamped", testFromStamped},
		{"OrderOf1000Candidates", testOrder},
		{"Broadcast", testBroadcast},
		{"RoomIsolation", testIsolation},
		{"Leave", testLeave},
		{"PingPong", testPing},
		{"BadInput", testBadInput},
		{"TooLarge", testTooLarge},
		{"BadJoins", testBadJoins},
		{"PeerIDTaken", testPeerIDTaken},
		{"DuplicateIDsDropped", testDedup},
		{"RateLimit", testRateLimit},
		{"RoomFull", testRoomFull},
		{"Tokens", testTokens},
		{"Resume", testResume},
		{"ResumeTooLate", testResumeTooLate},
		{"OfflineHoldDelivers", testHoldDelivers},
		{"OfflineHoldExpires", testHoldExpires},
		{"SlowConsumer", testSlowConsumer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Skip[tc.name]; ok {
				t.Skip(why)
			}
			tc.fn(t, h)
		})
	}
}

func testJoin(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, w := Join(t, d, "r1", "alice", "meta", `{"name":"Alice"}`)
	if w.Peer != "alice" || len(w.Session) < 32 || w.Resumed || len(w.Peers) != 0 {
		t.Fatalf("welcome: %+v", w)
	}
	if a.Last != 1 {
		t.Fatalf("welcome seq %d, want 1", a.Last)
	}
	b, w := Join(t, d, "r1", "")
	if !broker.ValidID(w.Peer) || len(w.Peers) != 1 || w.Peers[0].Peer != "alice" || string(w.Peers[0].Meta) != `{"name":"Alice"}` {
		t.Fatalf("second welcome: %+v", w)
	}
	j := a.Expect(broker.TypePeerJoined)
	if !bytes.Contains(j.Payload, []byte(`"peer":"`+b.Name+`"`)) || j.Room != "r1" {
		t.Fatalf("peer-joined: %s", j.Raw)
	}
}

func testRelay(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	payloads := []string{
		`{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n\u00e9\"q\""}`,
		`null`, `[1,2.50,{"x":[]}]`, `"text"`, `{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`,
	}
	types := []string{"offer", "candidate", "message", "bye", "candidate"}
	for i, p := range payloads {
		a.Send(fmt.Sprintf(`{"v":1,"type":%q,"to":"b","payload":%s,"extra":"dropped"}`, types[i], p))
		env := b.Expect(types[i])
		if string(env.Payload) != p {
			t.Fatalf("payload %d: got %s, want %s", i, env.Payload, p)
		}
		if env.From != "a" || env.Room != "r" || env.To != "b" || bytes.Contains(env.Raw, []byte("extra")) {
			t.Fatalf("relayed envelope: %s", env.Raw)
		}
	}
	a.Send(`{"type":"message","to":"b"}`)
	if env := b.Expect("message"); env.Payload != nil {
		t.Fatalf("absent payload arrived as %s", env.Payload)
	}
}

func testFromStamped(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	a.Send(`{"type":"offer","to":"b","from":"mallory","seq":99,"room":"elsewhere","payload":{"type":"offer","sdp":"x"}}`)
	env := b.Expect("offer")
	if env.From != "a" || env.Room != "r" {
		t.Fatalf("from/room not stamped by the broker: %s", env.Raw)
	}
}

func testOrder(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{Rate: -1})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			a.Send(fmt.Sprintf(`{"type":"candidate","to":"b","payload":{"candidate":"candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0}}`, i, 40000+i))
		}
	}()
	for i := 0; i < n; i++ {
		env := b.Expect("candidate")
		if !strings.Contains(string(env.Payload), fmt.Sprintf(`"candidate:%d `, i)) {
			t.Fatalf("candidate %d out of order: %s", i, env.Payload)
		}
		if i%32 == 31 {
			b.Ack()
		}
	}
	<-done
}

func testBroadcast(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	c, _ := Join(t, d, "r", "c")
	a.Send(`{"type":"message","payload":{"hello":"all"}}`)
	for _, p := range []*Peer{b, c} {
		env := p.Expect("message")
		if env.To != "" || env.From != "a" || string(env.Payload) != `{"hello":"all"}` {
			t.Fatalf("broadcast: %s", env.Raw)
		}
	}
	// a gets nothing of its own: the next thing it sees is b's reply.
	b.Send(`{"type":"message","to":"a","payload":1}`)
	if env := a.Expect("message"); env.From != "b" {
		t.Fatalf("sender received: %s", env.Raw)
	}
}

func testIsolation(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r1", "a")
	x, _ := Join(t, d, "r2", "a") // the same id in another room
	b, _ := Join(t, d, "r1", "b")
	a.Send(`{"type":"message","payload":"r1 only"}`)
	b.Expect("message")
	x.Send(`{"type":"message","to":"b","payload":"cross"}`) // b is not in r2
	b.Send(`{"type":"message","to":"a","payload":"to r1 a"}`)
	if env := a.Expect("message"); string(env.Payload) != `"to r1 a"` {
		t.Fatalf("r1's a got %s", env.Raw)
	}
	x.Send(`{"type":"ping","payload":"p"}`)
	if env := x.Next(); env.Type != broker.TypePong {
		t.Fatalf("r2's a got %s before its pong", env.Raw)
	}
}

func testLeave(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	b.Send(`{"type":"leave"}`)
	env := a.Expect(broker.TypePeerLeft)
	if string(env.Payload) != `{"peer":"b","reason":"leave"}` {
		t.Fatalf("peer-left: %s", env.Raw)
	}
	// The id is free again.
	Join(t, d, "r", "b")
}

func testPing(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	a.Send(`{"type":"ping","payload":{"t":12345}}`)
	if env := a.Next(); env.Type != broker.TypePong || string(env.Payload) != `{"t":12345}` {
		t.Fatalf("pong: %s", env.Raw)
	}
}

func testBadInput(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	cases := []struct{ in, code, ref string }{
		{`not json`, "bad-request", ""},
		{`"str"`, "bad-request", ""},
		{`{"payload":1}`, "bad-request", ""},
		{`{"type":"frobnicate","id":"m1"}`, "unknown-type", "m1"},
		{`{"type":"welcome","id":"m2"}`, "unknown-type", "m2"},
		{`{"v":2,"type":"message","id":"m3"}`, "unsupported-version", "m3"},
		{`{"v":"1","type":"message","id":"m4"}`, "bad-request", "m4"},
		{`{"type":7,"id":"m5"}`, "bad-request", "m5"},
		{`{"type":"offer","id":"m6","payload":{}}`, "bad-request", "m6"},
		{`{"type":"offer","id":"m7","to":"no spaces"}`, "bad-request", "m7"},
		{`{"type":"join","id":"m8","room":"r"}`, "bad-request", "m8"},
		{`{"type":"ack","id":"m9","payload":{"seq":99999}}`, "bad-request", "m9"},
		{`{"type":"ack","id":"m10","payload":"x"}`, "bad-request", "m10"},
		{`{"type":"message","id":"m11","to":"a"}`, "bad-request", "m11"},
		{`{"type":"message","id":"` + strings.Repeat("x", 65) + `"}`, "bad-request", ""},
	}
	for _, c := range cases {
		a.Send(c.in)
		a.ExpectError(c.code, c.ref)
	}
	// The session still works.
	a.Send(`{"type":"ping"}`)
	a.Expect(broker.TypePong)
}

func testTooLarge(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{MaxEnvelope: 1024})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	a.Send(`{"type":"message","to":"b","payload":"` + strings.Repeat("x", 2000) + `"}`)
	a.ExpectError("too-large", "")
	a.Send(`{"type":"message","to":"b","payload":"small"}`)
	if env := b.Expect("message"); string(env.Payload) != `"small"` {
		t.Fatalf("after too-large: %s", env.Raw)
	}
}

// joinRefused dials and sends a join, and checks that it is refused with code.
func joinRefused(t *testing.T, d Dialer, join, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Drop()
	if err := c.Send(ctx, []byte(join)); err != nil {
		return // refused at the door is fine too, if the adapter cannot say more
	}
	data, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("join %s: no answer: %v", join, err)
	}
	var env Envelope
	var e ErrorPayload
	if json.Unmarshal(data, &env) != nil || env.Type != "error" || json.Unmarshal(env.Payload, &e) != nil || e.Code != code {
		t.Fatalf("join %s: got %s, want error %s", join, data, code)
	}
}

func testBadJoins(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	joinRefused(t, d, `{"type":"message","room":"r"}`, "bad-request")
	joinRefused(t, d, `{"type":"join"}`, "bad-request")
	joinRefused(t, d, `{"type":"join","room":"bad room"}`, "bad-request")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"x/y"}}`, "bad-request")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"meta":[1]}}`, "bad-request")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"meta":{"x":"`+strings.Repeat("m", 1100)+`"}}}`, "bad-request")
	joinRefused(t, d, `{"type":"join","room":"r","payload":"x"}`, "bad-request")
	joinRefused(t, d, `{"v":3,"type":"join","room":"r"}`, "unsupported-version")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"resume":{"session":"nope","last_seq":0}}}`, "session-expired")
	joinRefused(t, d, `nonsense`, "bad-request")
}

func testPeerIDTaken(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	Join(t, d, "r", "a")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a"}}`, "peer-id-taken")
}

func testDedup(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	a.Send(`{"type":"message","to":"b","id":"once","payload":1}`)
	a.Send(`{"type":"message","to":"b","id":"once","payload":1}`)
	a.Send(`{"type":"message","to":"b","id":"twice","payload":2}`)
	if env := b.Expect("message"); string(env.Payload) != "1" {
		t.Fatal(string(env.Raw))
	}
	if env := b.Expect("message"); string(env.Payload) != "2" {
		t.Fatalf("duplicate id relayed: %s", env.Raw)
	}
}

func testRateLimit(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{Rate: 1, Burst: 5})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	for i := 0; i < 8; i++ {
		a.Send(fmt.Sprintf(`{"type":"message","to":"b","id":"m%d","payload":%d}`, i, i))
	}
	for i := 0; i < 5; i++ {
		b.Expect("message")
	}
	for i := 5; i < 8; i++ {
		a.ExpectError("rate-limited", fmt.Sprintf("m%d", i))
	}
}

func testRoomFull(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{MaxPeersPerRoom: 2})
	Join(t, d, "r", "a")
	Join(t, d, "r", "b")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"c"}}`, "room-full")
	Join(t, d, "other", "c")
}

func testTokens(t *testing.T, h Harness) {
	secret := []byte("conformance-secret")
	d := h.Start(t, broker.Options{TokenSecret: secret})
	tok := func(room, peer string, ttl time.Duration) string {
		s, err := broker.NewToken(secret, room, peer, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a"}}`, "unauthorized")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a","token":"garbage"}}`, "unauthorized")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a","token":"`+tok("r", "a", -time.Minute)+`"}}`, "unauthorized")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a","token":"`+tok("other", "a", time.Minute)+`"}}`, "forbidden")
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a","token":"`+tok("r", "b", time.Minute)+`"}}`, "forbidden")
	wrong, _ := broker.NewToken([]byte("another secret"), "r", "a", time.Minute)
	joinRefused(t, d, `{"type":"join","room":"r","payload":{"peer":"a","token":"`+wrong+`"}}`, "unauthorized")
	Join(t, d, "r", "a", "token", `"`+tok("r", "a", time.Minute)+`"`)
	if _, w := Join(t, d, "any", "", "token", `"`+tok("*", "named", time.Minute)+`"`); w.Peer != "named" {
		t.Fatalf("the token's peer was not taken: %+v", w)
	}
}

func testResume(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	a.Expect(broker.TypePeerJoined)
	a.Send(`{"type":"message","to":"b","payload":"before"}`)
	b.Expect("message")
	if err := b.Conn.Drop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		a.Send(fmt.Sprintf(`{"type":"candidate","to":"b","payload":{"candidate":"c%d","sdpMid":"0","sdpMLineIndex":0}}`, i))
	}
	// b comes back saying what it has.
	b2, w := Join(t, d, "r", "b", "resume", fmt.Sprintf(`{"session":%q,"last_seq":%d}`, b.Session, b.Last))
	if !w.Resumed || w.Session != b.Session || w.Peer != "b" {
		t.Fatalf("resumed welcome: %+v", w)
	}
	b2.Last = b.Last
	for i := 0; i < 5; i++ {
		env := b2.Expect("candidate")
		if !strings.Contains(string(env.Payload), fmt.Sprintf(`"c%d"`, i)) {
			t.Fatalf("after resume, candidate %d: %s", i, env.Raw)
		}
	}
	// Nothing twice, and a saw no peer-left: its next envelope is b2's.
	b2.Send(`{"type":"message","to":"a","payload":"back"}`)
	if env := a.Next(); env.Type != "message" || string(env.Payload) != `"back"` {
		t.Fatalf("a saw %s", env.Raw)
	}
	a.Send(`{"type":"message","to":"b","payload":"after"}`)
	if env := b2.Next(); string(env.Payload) != `"after"` {
		t.Fatalf("b2 got %s", env.Raw)
	}
}

func testResumeTooLate(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{ResumeWindow: 300 * time.Millisecond})
	a, _ := Join(t, d, "r", "a")
	b, _ := Join(t, d, "r", "b")
	_ = b.Conn.Drop()
	env := a.Expect(broker.TypePeerLeft)
	if string(env.Payload) != `{"peer":"b","reason":"timeout"}` {
		t.Fatalf("peer-left: %s", env.Raw)
	}
	joinRefused(t, d, fmt.Sprintf(`{"type":"join","room":"r","payload":{"peer":"b","resume":{"session":%q,"last_seq":1}}}`, b.Session), "session-expired")
}

func testHoldDelivers(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{OfflineHold: 5 * time.Second})
	a, _ := Join(t, d, "r", "a")
	a.Send(`{"type":"offer","to":"late","id":"o1","payload":{"type":"offer","sdp":"x"}}`)
	a.Send(`{"type":"candidate","to":"late","payload":null}`)
	time.Sleep(100 * time.Millisecond)
	late, _ := Join(t, d, "r", "late")
	if env := late.Next(); env.Type != "offer" || env.From != "a" {
		t.Fatalf("held offer: %s", env.Raw)
	}
	if env := late.Next(); env.Type != "candidate" || string(env.Payload) != "null" {
		t.Fatalf("held candidate: %s", env.Raw)
	}
}

func testHoldExpires(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{OfflineHold: 200 * time.Millisecond})
	a, _ := Join(t, d, "r", "a")
	a.Send(`{"type":"offer","to":"ghost","id":"o1","payload":{"type":"offer","sdp":"x"}}`)
	a.ExpectError("peer-unavailable", "o1")
}

func testSlowConsumer(t *testing.T, h Harness) {
	d := h.Start(t, broker.Options{MailboxMessages: 16, Rate: -1})
	unread := h.Unread
	if unread == nil {
		unread = d
	}
	a, _ := Join(t, d, "r", "a")
	_, w := Join(t, unread, "r", "b")
	a.Expect(broker.TypePeerJoined)
	big := strings.Repeat("x", 32<<10)
	deadline := time.Now().Add(waitLimit)
	for i := 0; ; i++ {
		a.Send(fmt.Sprintf(`{"type":"message","to":"b","payload":"%s"}`, big))
		if i%8 == 7 {
			a.Send(`{"type":"ping"}`)
			for {
				env := a.Next()
				if env.Type == broker.TypePong {
					break
				}
				if env.Type == broker.TypePeerLeft {
					if string(env.Payload) != `{"peer":"b","reason":"timeout"}` {
						t.Fatalf("peer-left: %s", env.Raw)
					}
					_ = w
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("a reader that never reads was not ended as a slow consumer")
		}
	}
}
