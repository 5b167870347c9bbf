package js_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/clients/go/peercmd"
	"github.com/switchboard-rtc/switchboard/clients/js"
	"github.com/switchboard-rtc/switchboard/internal/turntest"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// chromiumPath finds Debian's Chromium. Under CI a missing browser fails the
// test; elsewhere it skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium is not installed")
	return ""
}

// newBrowser starts headless Chromium with a fake camera, for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// tab opens a new tab at url and waits until its page script is ready.
func tab(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	waitFor(t, ctx, "the page's script", `window.ready === true`, 15*time.Second)
	return ctx
}

// eval runs a JavaScript expression in the tab, awaiting a promise, and
// returns its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor evaluates a JavaScript condition (a promise is awaited) until it
// is true.
func waitFor(t *testing.T, ctx context.Context, what, js string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({states: st.states, sig: st.sigStates, errors: st.errors, messages: st.messages, tracks: st.tracks, transport: st.transport})`))
			t.Fatalf("waiting for %s: %v (page state %s)", what, err, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startBroker serves a broker with both HTTP transports, the client files and
// the test page; refuseUpgrades makes every WebSocket upgrade fail, as a
// proxy that blocks them would.
func startBroker(t *testing.T, refuseUpgrades bool) string {
	t.Helper()
	return startBrokerWith(t, brokerSetup{refuseUpgrades: refuseUpgrades})
}

// brokerSetup is what a test's broker differs in.
type brokerSetup struct {
	// refuseUpgrades makes every WebSocket upgrade fail.
	refuseUpgrades bool
	// redis, if set, is the Redis server on which the broker also runs
	// its Redis transport, with the default prefix.
	redis *redistest.Server
	// ice is the STUN and TURN servers the broker hands out.
	ice broker.ICE
	// extra transports run beside the others (a custom adapter, say).
	extra []broker.Transport
}

// startBrokerWith is startBroker with the Redis transport, when s asks for
// it, beside the HTTP ones.
func startBrokerWith(t *testing.T, s brokerSetup) string {
	t.Helper()
	b := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ICE: s.ice})
	ws, lp := websocket.New(websocket.Options{}), longpoll.New(longpoll.Options{})
	transports := []broker.Transport{ws, lp}
	var rt *redis.Transport
	if s.redis != nil {
		var err error
		if rt, err = redis.New(redis.Options{Client: s.redis.Client(t)}); err != nil {
			t.Fatal(err)
		}
		transports = append(transports, rt)
	}
	transports = append(transports, s.extra...)
	srv := httpserver.New(b, httpserver.Options{Files: js.Files}, append([]broker.Transport{ws, lp}, s.extra...)...)
	page, err := os.ReadFile(filepath.Join("testdata", "e2e.html"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/e2e.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("/v1/ws", func(w http.ResponseWriter, r *http.Request) {
		if s.refuseUpgrades {
			http.Error(w, "upgrades are blocked here", http.StatusForbidden)
			return
		}
		srv.Handler().ServeHTTP(w, r)
	})
	mux.Handle("/", srv.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, tr := range transports {
		wg.Add(1)
		go func() { defer wg.Done(); _ = tr.Run(ctx, b) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = hs.Close()
		b.Close(broker.ReasonKicked)
	})
	if rt != nil {
		deadline := time.Now().Add(10 * time.Second)
		for rt.Ready() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the Redis transport is not ready: %v", rt.Ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return "http://" + ln.Addr().String()
}

type startArgs struct {
	Room      string `json:"room"`
	Peer      string `json:"peer"`
	Transport string `json:"transport"`
	Call      string `json:"call,omitempty"`
	Video     bool   `json:"video"`
	Greeting  string `json:"greeting,omitempty"`
	Echo      bool   `json:"echo"`
}

func start(t *testing.T, ctx context.Context, a startArgs) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`start(%s)`, jsonMarshal(a)))
}

// TestBrowsersCall: two pages in one room connect a data channel and a
// fake-camera video track each way, with frames decoded on the far side,
// for every pairing of transports.
func TestBrowsersCall(t *testing.T) {
	browser := newBrowser(t)
	base := startBroker(t, false)
	for _, pair := range [][2]string{{"websocket", "websocket"}, {"longpoll", "longpoll"}, {"websocket", "longpoll"}} {
		t.Run(pair[0]+"-"+pair[1], func(t *testing.T) {
			room := "call-" + pair[0] + "-" + pair[1]
			callee := tab(t, browser, base+"/e2e.html")
			caller := tab(t, browser, base+"/e2e.html")
			if got := start(t, callee, startArgs{Room: room, Peer: "bob", Transport: pair[1], Video: true, Echo: true}); got != pair[1] {
				t.Fatalf("callee transport %q", got)
			}
			if got := start(t, caller, startArgs{Room: room, Peer: "alice", Transport: pair[0], Call: "bob", Video: true, Greeting: "hello bob"}); got != pair[0] {
				t.Fatalf("caller transport %q", got)
			}
			waitFor(t, callee, "the greeting", `st.messages.includes("hello bob")`, 30*time.Second)
			waitFor(t, caller, "the echo", `st.messages.includes("echo: hello bob")`, 15*time.Second)
			waitFor(t, callee, "video frames decoded at bob", `framesDecoded().then(n => n > 5)`, 30*time.Second)
			waitFor(t, caller, "video frames decoded at alice", `framesDecoded().then(n => n > 5)`, 30*time.Second)
		})
	}
}

// TestAutoFallsBackToLongPoll: with WebSocket upgrades refused, "auto" ends up on long-polling.
func TestAutoFallsBackToLongPoll(t *testing.T) {
	browser := newBrowser(t)
	base := startBroker(t, true)
	callee := tab(t, browser, base+"/e2e.html")
	caller := tab(t, browser, base+"/e2e.html")
	if got := start(t, callee, startArgs{Room: "auto", Peer: "bob", Transport: "auto", Echo: true}); got != "longpoll" {
		t.Fatalf("auto chose %q with upgrades refused", got)
	}
	start(t, caller, startArgs{Room: "auto", Peer: "alice", Transport: "auto", Call: "bob", Greeting: "over long-polling"})
	waitFor(t, caller, "the echo", `st.messages.includes("echo: over long-polling")`, 30*time.Second)
}

// TestSignalingCutMidCall: one page's signaling connection is cut during a
// call; it reconnects and resumes, and a renegotiation (a track added
// afterwards) still completes.
func TestSignalingCutMidCall(t *testing.T) {
	browser := newBrowser(t)
	base := startBroker(t, false)
	px := transporttest.NewProxy(t, strings.TrimPrefix(base, "http://"))
	callee := tab(t, browser, base+"/e2e.html")
	caller := tab(t, browser, "http://"+px.Addr()+"/e2e.html")
	start(t, callee, startArgs{Room: "cut", Peer: "bob", Transport: "websocket", Echo: true})
	start(t, caller, startArgs{Room: "cut", Peer: "alice", Transport: "websocket", Call: "bob", Greeting: "before the cut"})
	waitFor(t, caller, "the call", `st.messages.includes("echo: before the cut")`, 30*time.Second)
	px.Cut()
	waitFor(t, caller, "a reconnect", `(st.sigStates || []).includes("reconnecting")`, 15*time.Second)
	waitFor(t, caller, "the resume", `st.sig.state === "open"`, 20*time.Second)
	eval[bool](t, caller, `addCanvasTrack()`)
	waitFor(t, callee, "the added track to arrive", `st.tracks >= 1`, 30*time.Second)
	waitFor(t, callee, "its frames", `framesDecoded().then(n => n > 5)`, 30*time.Second)
	eval[bool](t, caller, `(st.dc.send("after the cut"), true)`)
	waitFor(t, caller, "the echo after the cut", `st.messages.includes("echo: after the cut")`, 15*time.Second)
}

// lineBuffer collects a command's output lines, safe for concurrent use.
type lineBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lineBuffer) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runPeer runs `switchboard peer` in the process until the test ends.
func runPeer(t *testing.T, args ...string) *lineBuffer {
	t.Helper()
	out := &lineBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := peercmd.Main(ctx, args, out); err != nil && ctx.Err() == nil {
			t.Errorf("peer %v: %v", args, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

func waitLine(t *testing.T, out *lineBuffer, line string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !out.has(line) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q from the Go peer:\n%s", line, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGoPeerAndBrowser: a Go peer (pion) and a browser page connect a data
// channel across transports, each way round.
func TestGoPeerAndBrowser(t *testing.T) {
	browser := newBrowser(t)
	base := startBroker(t, false)
	t.Run("browser-calls-go", func(t *testing.T) {
		out := runPeer(t, "-url", base, "-room", "b2g", "-peer", "gopher", "-transport", "longpoll", "-echo")
		waitLine(t, out, "joined", 10*time.Second)
		page := tab(t, browser, base+"/e2e.html")
		start(t, page, startArgs{Room: "b2g", Peer: "browser", Transport: "websocket", Call: "gopher", Greeting: "hi from chromium"})
		// The Go peer echoes verbatim: the page hears its own words back.
		waitFor(t, page, "the Go peer's echo", `st.messages.includes("hi from chromium")`, 30*time.Second)
		waitLine(t, out, `message-received peer=browser text="hi from chromium"`, 5*time.Second)
	})
	t.Run("go-calls-browser", func(t *testing.T) {
		page := tab(t, browser, base+"/e2e.html")
		start(t, page, startArgs{Room: "g2b", Peer: "browser", Transport: "longpoll", Echo: true})
		out := runPeer(t, "-url", base, "-room", "g2b", "-peer", "gopher", "-transport", "websocket", "-call", "browser", "-send", "hi from pion")
		waitFor(t, page, "the Go peer's message", `st.messages.includes("hi from pion")`, 30*time.Second)
		waitLine(t, out, `text="echo: hi from pion"`, 15*time.Second)
	})
}

// TestGoPeerOnRedisAndBrowser: a Go peer that reaches only the broker's
// Redis answers a browser page on WebSocket, and echoes over the data
// channel what the page sends.
func TestGoPeerOnRedisAndBrowser(t *testing.T) {
	browser := newBrowser(t)
	rdb := redistest.Start(t)
	base := startBrokerWith(t, brokerSetup{redis: rdb})
	out := runPeer(t, "-transport", "redis", "-url", rdb.URL(), "-room", "r2b", "-peer", "gopher", "-echo")
	waitLine(t, out, "joined room=r2b peer=gopher transport=redis", 10*time.Second)
	page := tab(t, browser, base+"/e2e.html")
	if got := start(t, page, startArgs{Room: "r2b", Peer: "browser", Transport: "websocket", Call: "gopher", Greeting: "hi over redis"}); got != "websocket" {
		t.Fatalf("page transport %q", got)
	}
	// The Go peer echoes verbatim: the page hears its own words back.
	waitFor(t, page, "the Go peer's echo", `st.messages.includes("hi over redis")`, 30*time.Second)
	waitLine(t, out, `message-received peer=browser text="hi over redis"`, 5*time.Second)
	waitLine(t, out, `message-sent peer=browser text="hi over redis" echo=true`, 5*time.Second)
}

// TestDemoPageCall drives the demo page as a person would: two tabs join a
// room on different transports, one calls the other by clicking, they chat,
// and a screenshot of the call is kept as artifacts/demo-call.png.
// quietTransport is a custom transport that serves nothing, as one on a
// wire the browser does not speak.
type quietTransport struct{}

func (quietTransport) Name() string                                    { return "custom-wire" }
func (quietTransport) Run(ctx context.Context, _ *broker.Broker) error { <-ctx.Done(); return nil }

// TestDemoPageListsTransports: the demo page lists the node's transports,
// a custom one beside the built-in ones (disabled: the browser client
// does not speak it).
func TestDemoPageListsTransports(t *testing.T) {
	browser := newBrowser(t)
	base := startBrokerWith(t, brokerSetup{extra: []broker.Transport{quietTransport{}}})
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#join"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "custom-wire listed", `[...document.querySelectorAll("#transport option")].some((o) => o.value === "custom-wire")`, 20*time.Second)
	got := eval[[]string](t, ctx, `[...document.querySelectorAll("#transport option")].map((o) => o.value + (o.disabled ? " (disabled)" : ""))`)
	want := []string{"auto", "websocket", "longpoll", "custom-wire (disabled)"}
	if !slices.Equal(got, want) {
		t.Fatalf("transport choices %q, want %q", got, want)
	}
}

func TestDemoPageCall(t *testing.T) {
	browser := newBrowser(t)
	base := startBroker(t, false)
	open := func(name, transport string) context.Context {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
		t.Cleanup(cancelT)
		url := fmt.Sprintf("%s/?room=demo&name=%s&transport=%s&media=av", base, name, transport)
		if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#join")), chromedp.Click(chromedp.CSS("#join"))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		waitFor(t, ctx, name+" joined", `document.querySelector("#status").dataset.state === "open"`, 20*time.Second)
		return ctx
	}
	bob := open("bob", "longpoll")
	alice := open("alice", "websocket")
	waitFor(t, alice, "bob in alice's list", `!!document.querySelector('#peers button[data-peer="bob"]')`, 10*time.Second)
	if err := chromedp.Do(alice, chromedp.Click(chromedp.CSS(`#peers button[data-peer="bob"]`))); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []context.Context{alice, bob} {
		waitFor(t, tab, "the far video playing", `(() => { const v = document.querySelector("#remote-video"); return v.readyState >= 2 && v.videoWidth > 0 })()`, 30*time.Second)
		waitFor(t, tab, "the chat channel", `demo.channel?.readyState === "open"`, 15*time.Second)
	}
	if err := chromedp.Do(alice, chromedp.SendKeys(chromedp.CSS("#chat-input"), "hi bob, can you see me?"), chromedp.Click(chromedp.CSS("#chat-send"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bob, "alice's chat line", `document.querySelector("#chat-log").textContent.includes("can you see me?")`, 10*time.Second)
	if err := chromedp.Do(bob, chromedp.SendKeys(chromedp.CSS("#chat-input"), "loud and clear"), chromedp.Click(chromedp.CSS("#chat-send"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, "bob's answer", `document.querySelector("#chat-log").textContent.includes("loud and clear")`, 10*time.Second)
	// The signaling log drew the offer leaving alice and its answer coming back.
	waitFor(t, alice, "the offer and answer in the log", `!!document.querySelector('#log [data-dir="out"][data-type="offer"]') && !!document.querySelector('#log [data-dir="in"][data-type="answer"]')`, 5*time.Second)
	png, err := chromedp.Run(alice, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-call.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDemoPageRelayCall: the demo page, allowed relayed candidates only
// (?relay=1), calls a Go peer that is relay-only too; both take the TURN
// credentials the broker hands out, and the data channel opens through a
// real coturn.
func TestDemoPageRelayCall(t *testing.T) {
	browser := newBrowser(t)
	ts := turntest.Start(t)
	base := startBrokerWith(t, brokerSetup{ice: ts.ICE(10 * time.Minute)})
	out := runPeer(t, "-url", base, "-room", "relay", "-peer", "gopher", "-transport", "longpoll", "-loopback", "-relay", "-echo")
	waitLine(t, out, "joined room=relay peer=gopher", 10*time.Second)
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	url := base + "/?room=relay&name=browser&transport=websocket&media=none&relay=1"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#join")), chromedp.Click(chromedp.CSS("#join"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the join", `document.querySelector("#status").dataset.state === "open"`, 20*time.Second)
	if got := eval[string](t, ctx, `document.querySelector("#status").textContent`); !strings.Contains(got, "STUN/TURN from the broker") {
		t.Fatalf("status %q", got)
	}
	// The page hands the RTCPeerConnection the broker's servers, not one of its own.
	if got := eval[string](t, ctx, `JSON.stringify(demo.sig.iceServers.map(s => [s.urls, s.username.endsWith(":browser"), !!s.credential]))`); got != `[[["`+ts.URL("udp")+`"],true,true]]` {
		t.Fatalf("the page's ICE servers: %s", got)
	}
	// Asked, the broker answers with fresh credentials over the WebSocket.
	if got := eval[bool](t, ctx, `demo.sig.refreshIceServers().then(s => s.length === 1 && s[0].username.endsWith(":browser") && demo.sig.iceExpires > new Date())`); !got {
		t.Fatal("refreshIceServers gave no TURN credentials")
	}
	waitFor(t, ctx, "gopher in the list", `!!document.querySelector('#peers button[data-peer="gopher"]')`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#peers button[data-peer="gopher"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the chat channel", `demo.channel?.readyState === "open"`, 45*time.Second)
	if got := eval[string](t, ctx, `JSON.stringify(demo.link.pc.getConfiguration().iceTransportPolicy)`); got != `"relay"` {
		t.Fatalf("iceTransportPolicy %s", got)
	}
	waitFor(t, ctx, "the selected path", `demo.path?.local === "relay" && demo.path?.remote === "relay"`, 15*time.Second)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#chat-input"), "hi through the relay"), chromedp.Click(chromedp.CSS("#chat-send"))); err != nil {
		t.Fatal(err)
	}
	waitLine(t, out, `message-received peer=browser text="hi through the relay"`, 15*time.Second)
	waitLine(t, out, "candidate-pair peer=browser local=relay/", 5*time.Second)
	// The Go peer echoes: the line comes back over the relay.
	waitFor(t, ctx, "the echo", `document.querySelectorAll("#chat-log li").length >= 2`, 15*time.Second)
	waitFor(t, ctx, "the call line", `document.querySelector("#call-state").textContent.includes("through a TURN relay")`, 5*time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-relay.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	// coturn granted both ends a relay with the credentials minted for them.
	for _, peer := range []string{"browser", "gopher"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok := ts.WaitAllocation(ctx, peer)
		cancel()
		if !ok {
			t.Errorf("coturn allocated no relay for %s: %q", peer, ts.Allocations())
		}
	}
}
