package ndjson_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
	_ "github.com/switchboard-rtc/switchboard/examples/ndjson/ndjsonclient"
	"github.com/switchboard-rtc/switchboard/server"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve runs the custom binary's server.Run in the process, configured by
// environment variables alone, and returns its HTTP and ndjson addresses.
func serve(t *testing.T) (httpURL, tcpURL string) {
	t.Helper()
	httpAddr, tcpAddr := freeAddr(t), freeAddr(t)
	t.Setenv("SWITCHBOARD_LISTEN", httpAddr)
	t.Setenv("SWITCHBOARD_TRANSPORTS", "websocket,longpoll,ndjson")
	t.Setenv("SWITCHBOARD_TRANSPORTS_NDJSON_LISTEN", tcpAddr)
	t.Setenv("SWITCHBOARD_LOG_LEVEL", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	out := t.Output() // the node's log, shown if the test fails
	done := make(chan int, 1)
	go func() { done <- server.Run(ctx, []string{"serve"}, out, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	base := "http://" + httpAddr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, "tcp://" + tcpAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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

// signals hands every signal c receives to p.
func signals(c *switchboard.Client, p func() *webrtcpeer.Peer) {
	for env := range c.Messages() {
		if webrtcpeer.IsSignal(env) {
			if peer := p(); peer != nil {
				_ = peer.HandleSignal(env)
			}
		}
	}
}

// TestDataChannelAcrossTransports: in the custom binary, a Go peer on the
// ndjson transport calls a Go peer on WebSocket; they open a data channel
// and swap a message. The demo page's transport list names ndjson.
func TestDataChannelAcrossTransports(t *testing.T) {
	httpURL, tcpURL := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := loopbackAPI()

	resp, err := http.Get(httpURL + "/v1/transports")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), `"ndjson"`) || !strings.Contains(string(list), `"websocket"`) {
		t.Fatalf("/v1/transports: %s", list)
	}

	// Bob, on WebSocket, answers and echoes.
	bobSig, err := switchboard.Dial(ctx, httpURL, switchboard.Options{Room: "call", Peer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer bobSig.Close()
	var bobMu sync.Mutex
	var bob *webrtcpeer.Peer
	go signals(bobSig, func() *webrtcpeer.Peer {
		bobMu.Lock()
		defer bobMu.Unlock()
		if bob == nil {
			var ready = make(chan struct{})
			p, err := webrtcpeer.New(bobSig, "alice", webrtcpeer.Options{API: api, OnEvent: func(ev webrtcpeer.Event) {
				if ev.Kind == webrtcpeer.EventMessage {
					<-ready
					_ = bob.SendText("echo: " + string(ev.Data))
				}
			}})
			if err != nil {
				t.Error(err)
				return nil
			}
			bob = p
			close(ready)
		}
		return bob
	})

	// Alice, on ndjson over TCP, calls.
	aliceSig, err := switchboard.Dial(ctx, tcpURL, switchboard.Options{Room: "call", Peer: "alice", Transport: "ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	defer aliceSig.Close()
	got := make(chan string, 1)
	alice, err := webrtcpeer.New(aliceSig, "bob", webrtcpeer.Options{API: api, OnEvent: func(ev webrtcpeer.Event) {
		if ev.Kind == webrtcpeer.EventMessage {
			select {
			case got <- string(ev.Data):
			default:
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	go signals(aliceSig, func() *webrtcpeer.Peer { return alice })
	if err := alice.Call(); err != nil {
		t.Fatal(err)
	}
	if err := alice.WaitOpen(ctx); err != nil {
		t.Fatalf("data channel: %v", err)
	}
	if err := alice.SendText("hello over ndjson"); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if msg != "echo: hello over ndjson" {
			t.Fatalf("got %q", msg)
		}
	case <-ctx.Done():
		t.Fatal("no echo on the data channel")
	}
	bobMu.Lock()
	if bob != nil {
		bob.Close()
	}
	bobMu.Unlock()
}
