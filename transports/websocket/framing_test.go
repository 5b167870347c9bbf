package websocket_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker"
	wstransport "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// maxEnvelope is the envelope limit of the framing tests' broker.
const maxEnvelope = 1024

var key = [4]byte{0x37, 0xFA, 0x21, 0x3D}

func text(s string) []byte { return wstransport.ClientFrame(true, 0x1, key, []byte(s)) }

// rawPeer is a gorilla client whose frames the test may also write by hand.
type rawPeer struct {
	t  *testing.T
	ws *websocket.Conn
	nc net.Conn
}

func dialRaw(t *testing.T, url string) *rawPeer {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rawPeer{t: t, ws: ws, nc: ws.NetConn()}
}

// write writes raw bytes.
func (p *rawPeer) write(b ...[]byte) {
	p.t.Helper()
	var all []byte
	for _, f := range b {
		all = append(all, f...)
	}
	if _, err := p.nc.Write(all); err != nil {
		p.t.Fatal(err)
	}
}

// next reads the next text frame within a few seconds.
func (p *rawPeer) next() string {
	p.t.Helper()
	_ = p.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := p.ws.ReadMessage()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return string(data)
}

// expect reads text frames until one contains want.
func (p *rawPeer) expect(want string) string {
	p.t.Helper()
	for {
		if s := p.next(); strings.Contains(s, want) {
			return s
		}
	}
}

// expectAll reads text frames until it has seen each of wants, in any
// order (seqless frames, like pong, may overtake the mailbox's).
func (p *rawPeer) expectAll(wants ...string) {
	p.t.Helper()
	for len(wants) > 0 {
		s := p.next()
		for i, w := range wants {
			if strings.Contains(s, w) {
				wants = append(wants[:i], wants[i+1:]...)
				break
			}
		}
	}
}

// expectClose reads until the broker closes with code.
func (p *rawPeer) expectClose(code int) {
	p.t.Helper()
	_ = p.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := p.ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, code) {
			p.t.Fatalf("want close %d, got %v", code, err)
		}
		return
	}
}

func (p *rawPeer) join(peer string) {
	p.t.Helper()
	p.write(text(`{"type":"join","room":"r","payload":{"peer":"` + peer + `"}}`))
	p.expect(`"type":"welcome"`)
}

func TestFraming(t *testing.T) {
	t.Run("poller", func(t *testing.T) {
		url, _ := start(t, broker.Options{MaxEnvelope: maxEnvelope}, wstransport.Options{})
		testFraming(t, url)
	})
	t.Run("goroutine per connection", func(t *testing.T) {
		tr := wstransport.WithoutPoller(wstransport.New(wstransport.Options{}))
		url, _ := startWith(t, broker.Options{MaxEnvelope: maxEnvelope}, tr)
		testFraming(t, url)
	})
}

func testFraming(t *testing.T, url string) {

	t.Run("join and envelope in one write", func(t *testing.T) {
		p := dialRaw(t, url)
		p.write(text(`{"type":"join","room":"r","payload":{"peer":"pipelined"}}`), text(`{"type":"ping","id":"p1"}`))
		p.expect(`"type":"welcome"`)
		p.expect(`"type":"pong"`)
	})

	t.Run("a byte at a time", func(t *testing.T) {
		p := dialRaw(t, url)
		f := append(text(`{"type":"join","room":"r","payload":{"peer":"trickle"}}`), text(`{"type":"ping"}`)...)
		for i := range f {
			p.write(f[i : i+1])
			time.Sleep(time.Millisecond)
		}
		p.expect(`"type":"welcome"`)
		p.expect(`"type":"pong"`)
	})

	t.Run("fragments with a ping between", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("fragments")
		pongs := make(chan string, 1)
		p.ws.SetPongHandler(func(s string) error { pongs <- s; return nil })
		p.write(
			wstransport.ClientFrame(false, 0x1, key, []byte(`{"type":`)),
			wstransport.ClientFrame(true, 0x9, key, []byte("hb")),
			wstransport.ClientFrame(false, 0x0, key, []byte(`"ping",`)),
			wstransport.ClientFrame(true, 0x0, key, []byte(`"id":"frag"}`)),
		)
		p.expect(`"type":"pong"`)
		select {
		case s := <-pongs:
			if s != "hb" {
				t.Fatalf("pong frame %q", s)
			}
		default:
			t.Fatal("no pong frame for the ping")
		}
	})

	t.Run("envelope too large, connection goes on", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("big")
		big := `{"type":"ping","payload":"` + strings.Repeat("x", 2*maxEnvelope) + `"}`
		p.write(text(big), text(`{"type":"ping","id":"after"}`))
		p.expectAll(`"code":"too-large"`, `"type":"pong"`)
	})

	t.Run("fragmented message too large", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("bigfrag")
		part := strings.Repeat("y", maxEnvelope/2+10)
		p.write(
			wstransport.ClientFrame(false, 0x1, key, []byte(part)),
			wstransport.ClientFrame(false, 0x0, key, []byte(part)),
			wstransport.ClientFrame(true, 0x0, key, []byte(part)),
			text(`{"type":"ping"}`),
		)
		p.expectAll(`"code":"too-large"`, `"type":"pong"`)
	})

	t.Run("frame past the hard limit", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("huge")
		f := wstransport.ClientFrame(true, 0x1, key, make([]byte, 16*maxEnvelope+1))
		p.write(f[:14]) // the header says enough
		p.expectClose(websocket.CloseMessageTooBig)
	})

	t.Run("unmasked frame", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("unmasked")
		p.write([]byte{0x81, 2, '{', '}'})
		p.expectClose(websocket.CloseProtocolError)
	})

	t.Run("continuation without a start", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("cont")
		p.write(wstransport.ClientFrame(true, 0x0, key, []byte("x")))
		p.expectClose(websocket.CloseProtocolError)
	})

	t.Run("close is answered", func(t *testing.T) {
		p := dialRaw(t, url)
		p.join("closer")
		p.write(wstransport.ClientFrame(true, 0x8, key, []byte{0x03, 0xE8}))
		p.expectClose(websocket.CloseNormalClosure)
	})

	t.Run("bad join frame", func(t *testing.T) {
		p := dialRaw(t, url)
		p.write([]byte{0x81, 2, '{', '}'})
		p.expectClose(websocket.CloseProtocolError)
	})
}

// TestIdleConnectionsHoldNoGoroutine: where readiness polling is available,
// a joined connection with nothing to read or write keeps no goroutine.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readiness polling is implemented on Linux only")
	}
	url, _ := start(t, broker.Options{JoinRate: -1}, wstransport.Options{}) // 200 joins from one address
	warm := dialRaw(t, url)
	warm.join("warm")
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 200
	peers := make([]*rawPeer, n)
	for i := range peers {
		peers[i] = dialRaw(t, url)
		peers[i].write(text(`{"type":"join","room":"idle` + string(rune('a'+i%26)) + `","payload":{"peer":"p` + strings.Repeat("x", i%7) + string(rune('a'+i/26)) + `"}}`))
		peers[i].expect(`"type":"welcome"`)
	}
	var grown int
	for range 50 { // presence frames settle
		time.Sleep(20 * time.Millisecond)
		if grown = runtime.NumGoroutine() - before; grown < n/10 {
			break
		}
	}
	if grown >= n/10 {
		t.Fatalf("%d idle connections added %d goroutines", n, grown)
	}
	// And they still work.
	peers[0].write(text(`{"type":"ping"}`))
	peers[0].expect(`"type":"pong"`)
}

// panicWatch is a log handler that remembers whether anything logged a
// panic.
type panicWatch struct {
	slog.Handler
	panics *atomic.Int32
}

func (h panicWatch) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panicked") {
		h.panics.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h panicWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return panicWatch{h.Handler.WithAttrs(as), h.panics}
}

func (h panicWatch) WithGroup(name string) slog.Handler {
	return panicWatch{h.Handler.WithGroup(name), h.panics}
}

// TestGarbageHurtsNobodyElse throws random bytes, as frames and not, at the
// broker, before and after joins, while two peers talk: they go on, and
// nothing panics.
func TestGarbageHurtsNobodyElse(t *testing.T) {
	var panics atomic.Int32
	log := slog.New(panicWatch{slog.NewTextHandler(io.Discard, nil), &panics})
	url, _ := start(t, broker.Options{MaxEnvelope: maxEnvelope, Logger: log}, wstransport.Options{})
	a, b := dialRaw(t, url), dialRaw(t, url)
	a.join("alice")
	b.join("bob")
	rng := rand.New(rand.NewPCG(1, 2))
	junk := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.UintN(256))
		}
		return p
	}
	for i := range 60 {
		p := dialRaw(t, url)
		if i%2 == 1 {
			p.join("junk" + strconv.Itoa(i))
		}
		var f []byte
		switch i % 3 {
		case 0: // bytes, not frames
			f = junk(1 + rng.IntN(300))
		case 1: // frames of any opcode and flags, random payloads
			var k [4]byte
			copy(k[:], junk(4))
			f = wstransport.ClientFrame(rng.IntN(2) == 0, byte(rng.UintN(16)), k, junk(rng.IntN(2*maxEnvelope)))
			f[0] |= byte(rng.UintN(8)) << 4 // reserved bits, sometimes
		case 2: // text frames of broken JSON
			f = text(`{"type":"message","to":"alice","payload":` + string(junk(20)))
		}
		_, _ = p.nc.Write(f)
		a.write(text(`{"type":"message","to":"bob","payload":{"n":` + strconv.Itoa(i) + `}}`))
		b.expect(`"payload":{"n":` + strconv.Itoa(i) + `}`)
	}
	if n := panics.Load(); n > 0 {
		t.Fatalf("%d panics logged", n)
	}
}
