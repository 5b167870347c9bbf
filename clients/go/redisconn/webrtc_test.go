package redisconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
)

// loopbackAPI gathers only loopback UDP candidates, so that the test needs
// no network.
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

// callEnd is one end of a call: a Peer over a signaling client, whose data
// channel messages are collected, and echoed when echo is set.
type callEnd struct {
	peer     *webrtcpeer.Peer
	messages chan string
}

// newCallEnd makes the Peer of c for a call with remote and hands it every
// signal c receives.
func newCallEnd(t *testing.T, c *switchboard.Client, remote string, echo bool) *callEnd {
	t.Helper()
	e := &callEnd{messages: make(chan string, 16)}
	ready := make(chan struct{})
	p, err := webrtcpeer.New(c, remote, webrtcpeer.Options{
		API: loopbackAPI(),
		OnEvent: func(ev webrtcpeer.Event) {
			if ev.Kind != webrtcpeer.EventMessage {
				return
			}
			<-ready
			if echo {
				if err := e.peer.SendText("echo: " + string(ev.Data)); err != nil {
					t.Errorf("%s echoing: %v", c.Peer(), err)
				}
			}
			e.messages <- string(ev.Data)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.peer = p
	close(ready)
	t.Cleanup(func() { p.Close() })
	go func() {
		for env := range c.Messages() {
			if webrtcpeer.IsSignal(env) && env.From == remote {
				if err := p.HandleSignal(env); err != nil {
					t.Errorf("%s: %v", c.Peer(), err)
				}
			}
		}
	}()
	return e
}

func (e *callEnd) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-e.messages:
		if got != want {
			t.Fatalf("%s: got %q, want %q", e.peer.Remote(), got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no %q on the data channel with %s", want, e.peer.Remote())
	}
}

// Two pion peers, one signaling over Redis and one over WebSocket, open a
// data channel and echo over it, whichever of them calls.
func TestWebRTCEcho(t *testing.T) {
	n := start(t, setup{})
	for _, tc := range []struct{ name, caller, callee string }{
		{"redis-calls-websocket", "redis", "websocket"},
		{"websocket-calls-redis", "websocket", "redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := map[string]string{"redis": n.RedisURL, "websocket": n.URL}
			room := "webrtc-" + tc.name
			bobSig := dial(t, url[tc.callee], tc.callee, room, "bob")
			aliceSig := dial(t, url[tc.caller], tc.caller, room, "alice")
			bob := newCallEnd(t, bobSig, "alice", true)
			alice := newCallEnd(t, aliceSig, "bob", false)
			if err := alice.peer.Call(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := alice.peer.WaitOpen(ctx); err != nil {
				t.Fatalf("alice's data channel: %v", err)
			}
			if err := bob.peer.WaitOpen(ctx); err != nil {
				t.Fatalf("bob's data channel: %v", err)
			}
			if err := alice.peer.SendText("hello over " + tc.caller); err != nil {
				t.Fatal(err)
			}
			bob.expect(t, "hello over "+tc.caller)
			alice.expect(t, "echo: hello over "+tc.caller)
			if err := alice.peer.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
