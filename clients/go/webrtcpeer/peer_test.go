package webrtcpeer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
)

// loopbackAPI gathers only loopback UDP candidates, so that tests need no
// network.
func loopbackAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	se.LoggerFactory = quiet
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func startBroker(t *testing.T) *testbroker.Server {
	t.Helper()
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// end is one side of a call in a test: a signaling client, its Peer (made
// by Call, or on the first offer), and everything that happened.
type end struct {
	t      *testing.T
	client *switchboard.Client
	opts   webrtcpeer.Options

	mu     sync.Mutex
	peer   *webrtcpeer.Peer
	events []webrtcpeer.Event
	ready  chan struct{} // closed once peer is set

	messages   chan string
	echo       atomic.Bool
	reconnects atomic.Int32 // resumes of the signaling session
	// wrap, if set before the Peer is made, wraps the Signaler it gets.
	wrap func(webrtcpeer.Signaler) webrtcpeer.Signaler
}

// cuttingSignaler cuts every connection to the broker just before it sends
// the first envelope of type typ, which then waits for the resume.
type cuttingSignaler struct {
	webrtcpeer.Signaler
	typ  string
	srv  *testbroker.Server
	once sync.Once
	cut  chan int
}

func (s *cuttingSignaler) Send(ctx context.Context, env switchboard.Envelope) error {
	if env.Type == s.typ {
		s.once.Do(func() { s.cut <- s.srv.CutConnections() })
	}
	return s.Signaler.Send(ctx, env)
}

func newEnd(t *testing.T, url, room, id, transport string, opts webrtcpeer.Options) *end {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := &end{t: t, ready: make(chan struct{}), messages: make(chan string, 16)}
	c, err := switchboard.Dial(ctx, url, switchboard.Options{Room: room, Peer: id, Transport: transport,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, PollWait: 5 * time.Second,
		OnStateChange: func(s switchboard.State) {
			if s == switchboard.StateConnected {
				e.reconnects.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	if opts.API == nil {
		opts.API = loopbackAPI()
	}
	user := opts.OnEvent
	opts.OnEvent = func(ev webrtcpeer.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		p := e.peer
		e.mu.Unlock()
		if ev.Kind == webrtcpeer.EventMessage {
			if e.echo.Load() {
				p.SendText("echo: " + string(ev.Data))
			}
			e.messages <- string(ev.Data)
		}
		if user != nil {
			user(ev)
		}
	}
	e.opts = opts
	go e.signals()
	t.Cleanup(func() {
		e.mu.Lock()
		p := e.peer
		e.mu.Unlock()
		if p != nil {
			p.Close()
		}
		c.Close()
	})
	return e
}

func (e *end) setPeer(remote string) *webrtcpeer.Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.peer != nil {
		return e.peer
	}
	var sig webrtcpeer.Signaler = e.client
	if e.wrap != nil {
		sig = e.wrap(e.client)
	}
	p, err := webrtcpeer.New(sig, remote, e.opts)
	if err != nil {
		e.t.Error(err)
		return nil
	}
	e.peer = p
	close(e.ready)
	return p
}

// signals hands every signal to the Peer, making one on the first offer.
func (e *end) signals() {
	for env := range e.client.Messages() {
		if !webrtcpeer.IsSignal(env) {
			continue
		}
		e.mu.Lock()
		p := e.peer
		e.mu.Unlock()
		if p == nil && env.Type == switchboard.TypeOffer {
			p = e.setPeer(env.From)
		}
		if p == nil {
			continue
		}
		if err := p.HandleSignal(env); err != nil {
			e.t.Errorf("%s: %v", e.client.Peer(), err)
		}
	}
}

func (e *end) call(remote string) *webrtcpeer.Peer {
	p := e.setPeer(remote)
	if err := p.Call(); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *end) waitPeer() *webrtcpeer.Peer {
	e.t.Helper()
	select {
	case <-e.ready:
	case <-time.After(20 * time.Second):
		e.t.Fatalf("%s: no call came", e.client.Peer())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peer
}

func (e *end) waitMessage(want string) {
	e.t.Helper()
	select {
	case got := <-e.messages:
		if got != want {
			e.t.Fatalf("%s got %q, want %q", e.client.Peer(), got, want)
		}
	case <-time.After(20 * time.Second):
		e.t.Fatalf("%s: no message (events: %s)", e.client.Peer(), e.eventKinds())
	}
}

func (e *end) count(kind webrtcpeer.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func (e *end) eventKinds() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var kinds []string
	for _, ev := range e.events {
		s := string(ev.Kind)
		if ev.State != "" {
			s += "=" + ev.State
		}
		if ev.Err != nil {
			s += "(" + ev.Err.Error() + ")"
		}
		kinds = append(kinds, s)
	}
	return strings.Join(kinds, " ")
}

func waitOpen(t *testing.T, p *webrtcpeer.Peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitOpen(ctx); err != nil {
		t.Fatalf("data channel to %s: %v", p.Remote(), err)
	}
}

// echoCall makes alice call bob, who echoes, and checks that a message goes
// there and back.
func echoCall(t *testing.T, alice, bob *end) {
	t.Helper()
	bob.echo.Store(true)
	pa := alice.call("bob")
	waitOpen(t, pa)
	if err := pa.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("echo: hello")
	bob.waitMessage("hello")
	waitOpen(t, bob.waitPeer())
}

func TestEchoAcrossTransports(t *testing.T) {
	srv := startBroker(t)
	for _, pair := range [][2]string{{"websocket", "websocket"}, {"websocket", "longpoll"}, {"longpoll", "websocket"}, {"longpoll", "longpoll"}} {
		t.Run(pair[0]+"-"+pair[1], func(t *testing.T) {
			room := "echo-" + pair[0] + "-" + pair[1]
			alice := newEnd(t, srv.URL, room, "alice", pair[0], webrtcpeer.Options{})
			bob := newEnd(t, srv.URL, room, "bob", pair[1], webrtcpeer.Options{})
			echoCall(t, alice, bob)
			if alice.count(webrtcpeer.EventCandidateSent) == 0 || bob.count(webrtcpeer.EventCandidateReceived) == 0 {
				t.Fatalf("no trickled candidates: %s", alice.eventKinds())
			}
			if alice.count(webrtcpeer.EventOfferSent) != 1 || alice.count(webrtcpeer.EventAnswerReceived) != 1 {
				t.Fatalf("alice: %s", alice.eventKinds())
			}
		})
	}
}

// GatherAll sends one description with every candidate and no candidate
// envelopes; it still meets a trickling end.
func TestGatherAll(t *testing.T) {
	srv := startBroker(t)
	for _, both := range []bool{true, false} {
		t.Run(fmt.Sprint("both=", both), func(t *testing.T) {
			room := fmt.Sprint("gather-", both)
			alice := newEnd(t, srv.URL, room, "alice", "longpoll", webrtcpeer.Options{GatherAll: true})
			bob := newEnd(t, srv.URL, room, "bob", "websocket", webrtcpeer.Options{GatherAll: both})
			echoCall(t, alice, bob)
			if n := alice.count(webrtcpeer.EventCandidateSent); n != 0 {
				t.Fatalf("alice trickled %d candidates", n)
			}
			if n := bob.count(webrtcpeer.EventCandidateSent); both != (n == 0) {
				t.Fatalf("bob trickled %d candidates", n)
			}
		})
	}
}

// Both ends call at once: the polite one gives way and the call completes.
func TestGlare(t *testing.T) {
	srv := startBroker(t)
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			room := fmt.Sprint("glare-", round)
			alice := newEnd(t, srv.URL, room, "alice", "websocket", webrtcpeer.Options{})
			bob := newEnd(t, srv.URL, room, "bob", "websocket", webrtcpeer.Options{})
			pa := alice.setPeer("bob")
			pb := bob.setPeer("alice")
			if !pa.Polite() || pb.Polite() {
				t.Fatalf("alice polite %v, bob polite %v", pa.Polite(), pb.Polite())
			}
			var wg sync.WaitGroup
			for _, p := range []*webrtcpeer.Peer{pa, pb} {
				wg.Add(1)
				go func() { defer wg.Done(); p.Call() }()
			}
			wg.Wait()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("alice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
				}
			})
			waitOpen(t, pa)
			waitOpen(t, pb)
			bob.echo.Store(true)
			if err := pa.SendText("hi"); err != nil {
				t.Fatal(err)
			}
			alice.waitMessage("echo: hi")
			if alice.count(webrtcpeer.EventError) > 0 || bob.count(webrtcpeer.EventError) > 0 {
				t.Fatalf("errors:\nalice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
			}
			t.Logf("alice: rollbacks %d; bob: ignored offers %d", alice.count(webrtcpeer.EventRollback), bob.count(webrtcpeer.EventOfferIgnored))
		})
	}
}

// An ICE restart on an open call renegotiates and the call goes on.
func TestICERestart(t *testing.T) {
	srv := startBroker(t)
	alice := newEnd(t, srv.URL, "restart", "alice", "websocket", webrtcpeer.Options{})
	bob := newEnd(t, srv.URL, "restart", "bob", "websocket", webrtcpeer.Options{})
	echoCall(t, alice, bob)
	pb := bob.waitPeer()
	pb.RestartICE()
	deadline := time.Now().Add(20 * time.Second)
	for alice.count(webrtcpeer.EventAnswerSent) == 0 || bob.count(webrtcpeer.EventAnswerReceived) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no restart:\nalice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bob.count(webrtcpeer.EventICERestart) != 1 {
		t.Fatalf("bob: %s", bob.eventKinds())
	}
	pa := alice.waitPeer()
	if err := pa.SendText("after restart"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("echo: after restart")
}

// Every signaling connection is cut just as the call starts; the clients
// resume and the call completes.
func TestCallSurvivesCutSignaling(t *testing.T) {
	srv := startBroker(t)
	for _, tr := range []string{"websocket", "longpoll"} {
		for _, typ := range []string{"offer", "answer"} {
			t.Run(tr+"-"+typ, func(t *testing.T) {
				room := "cut-" + tr + "-" + typ
				cut := make(chan int, 1)
				wrap := func(sig webrtcpeer.Signaler) webrtcpeer.Signaler {
					return &cuttingSignaler{Signaler: sig, typ: typ, srv: srv, cut: cut}
				}
				alice := newEnd(t, srv.URL, room, "alice", tr, webrtcpeer.Options{})
				bob := newEnd(t, srv.URL, room, "bob", "websocket", webrtcpeer.Options{})
				alice.wrap, bob.wrap = wrap, wrap
				echoCall(t, alice, bob)
				if n := <-cut; n == 0 {
					t.Fatal("nothing was cut")
				}
				if tr == "websocket" {
					for deadline := time.Now().Add(10 * time.Second); alice.reconnects.Load() == 0 || bob.reconnects.Load() == 0; time.Sleep(10 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatalf("resumes: alice %d, bob %d", alice.reconnects.Load(), bob.reconnects.Load())
						}
					}
				}
			})
		}
	}
}

// A bye from one end closes the other.
func TestHangup(t *testing.T) {
	srv := startBroker(t)
	alice := newEnd(t, srv.URL, "bye", "alice", "websocket", webrtcpeer.Options{})
	bob := newEnd(t, srv.URL, "bye", "bob", "websocket", webrtcpeer.Options{})
	echoCall(t, alice, bob)
	pa := alice.waitPeer()
	if err := pa.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	pb := bob.waitPeer()
	select {
	case <-pb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("bob's peer still open")
	}
	for deadline := time.Now().Add(10 * time.Second); bob.count(webrtcpeer.EventClosed) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob: %s", bob.eventKinds())
		}
	}
	if bob.count(webrtcpeer.EventBye) != 1 {
		t.Fatalf("bob: %s", bob.eventKinds())
	}
	if err := pa.SendText("x"); err != webrtcpeer.ErrClosed {
		t.Fatalf("send after hangup: %v", err)
	}
}

// Both ends restart ICE at once on an open call: the offers collide on a
// negotiated connection, the polite end gives way, and the call goes on.
func TestRestartGlare(t *testing.T) {
	srv := startBroker(t)
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			room := fmt.Sprint("restart-glare-", round)
			alice := newEnd(t, srv.URL, room, "alice", "websocket", webrtcpeer.Options{})
			bob := newEnd(t, srv.URL, room, "bob", "websocket", webrtcpeer.Options{})
			echoCall(t, alice, bob)
			pa, pb := alice.waitPeer(), bob.waitPeer()
			pa.RestartICE()
			pb.RestartICE()
			deadline := time.Now().Add(20 * time.Second)
			for alice.count(webrtcpeer.EventAnswerReceived)+alice.count(webrtcpeer.EventAnswerSent) < 3 ||
				bob.count(webrtcpeer.EventAnswerReceived)+bob.count(webrtcpeer.EventAnswerSent) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("restarts did not settle:\nalice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i := range 3 {
				msg := fmt.Sprint("after ", i)
				if err := pa.SendText(msg); err != nil {
					t.Fatal(err)
				}
				alice.waitMessage("echo: " + msg)
				bob.waitMessage(msg)
			}
			if alice.count(webrtcpeer.EventError)+bob.count(webrtcpeer.EventError) > 0 {
				t.Fatalf("errors:\nalice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
			}
			t.Logf("alice: rollbacks %d; bob: ignored offers %d", alice.count(webrtcpeer.EventRollback), bob.count(webrtcpeer.EventOfferIgnored))
		})
	}
}
