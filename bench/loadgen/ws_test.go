package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsPeer is the server end of a test WebSocket, spoken frame by frame.
type wsPeer struct {
	t   *testing.T
	c   net.Conn
	br  *bufio.Reader
	req *http.Request
}

// wsTestServer accepts one connection, reads its upgrade request and calls
// serve with the connection and the request; serve answers the handshake
// itself (see accept). It returns the URL to dial.
func wsTestServer(t *testing.T, serve func(p *wsPeer)) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Errorf("server: reading the upgrade request: %v", err)
			return
		}
		serve(&wsPeer{t: t, c: c, br: br, req: req})
	}()
	return &url.URL{Scheme: "ws", Host: ln.Addr().String(), Path: "/ws", RawQuery: "id=a"}
}

// accept answers the upgrade, followed in the same write by extra bytes.
func (p *wsPeer) accept(extra []byte) {
	key := p.req.Header.Get("Sec-WebSocket-Key")
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(key) + "\r\n\r\n"
	p.write(append([]byte(resp), extra...))
}

func (p *wsPeer) write(b []byte) {
	if _, err := p.c.Write(b); err != nil {
		p.t.Errorf("server: write: %v", err)
	}
}

// serverFrame returns an unmasked frame, as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// clientFrame is a frame as the server reads it.
type clientFrame struct {
	fin     bool
	op      byte
	masked  bool
	key     [4]byte
	payload []byte // unmasked
}

// readFrame reads one frame from the client.
func (p *wsPeer) readFrame() (clientFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return clientFrame{}, err
	}
	f := clientFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return clientFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return clientFrame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<24 {
		return clientFrame{}, fmt.Errorf("a frame of %d bytes", n)
	}
	if f.masked {
		if _, err := io.ReadFull(p.br, f.key[:]); err != nil {
			return clientFrame{}, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(p.br, f.payload); err != nil {
		return clientFrame{}, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= f.key[i%4]
		}
	}
	return f, nil
}

// skipFrame reads one frame from the client and forgets it, without
// allocating.
func (p *wsPeer) skipFrame() error {
	h, err := p.br.Peek(2)
	if err != nil {
		return err
	}
	hl, n := 2, int(h[1]&0x7f)
	switch n {
	case 126:
		if h, err = p.br.Peek(4); err != nil {
			return err
		}
		hl, n = 4, int(binary.BigEndian.Uint16(h[2:]))
	case 127:
		if h, err = p.br.Peek(10); err != nil {
			return err
		}
		hl, n = 10, int(binary.BigEndian.Uint64(h[2:]))
	}
	if h[1]&0x80 != 0 {
		hl += 4
	}
	_, err = p.br.Discard(hl + n)
	return err
}

// mustFrame reads a frame, failing the test on an error or an unmasked
// frame.
func (p *wsPeer) mustFrame() clientFrame {
	f, err := p.readFrame()
	if err != nil {
		p.t.Errorf("server: reading a frame: %v", err)
	} else if !f.masked {
		p.t.Errorf("server: unmasked frame from the client: %+v", f)
	}
	return f
}

func dialTest(t *testing.T, u *url.URL) *wsConn {
	t.Helper()
	w, err := dialWS(t.Context(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close(nil) })
	return w
}

func TestWSHandshake(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	u := wsTestServer(t, func(p *wsPeer) {
		reqs <- p.req
		// The first frame travels with the 101, as PeerJS's OPEN may.
		p.accept(serverFrame(true, opText, []byte(`{"type":"OPEN"}`)))
		f := p.mustFrame()
		if f.op != opText || string(f.payload) != "hi" {
			t.Errorf("server got %+v", f)
		}
		p.write(serverFrame(true, opText, []byte("second")))
		p.mustFrame() // close
	})
	w := dialTest(t, u)
	req := <-reqs
	for h, want := range map[string]string{
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Version": "13",
		"Origin":                "http://" + u.Host,
	} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if k, err := base64.StdEncoding.DecodeString(req.Header.Get("Sec-WebSocket-Key")); err != nil || len(k) != 16 {
		t.Errorf("Sec-WebSocket-Key %q", req.Header.Get("Sec-WebSocket-Key"))
	}
	if req.RequestURI != "/ws?id=a" || req.Host != u.Host || req.Method != http.MethodGet {
		t.Errorf("request %s %s, Host %s", req.Method, req.RequestURI, req.Host)
	}
	if got, err := w.read(); err != nil || string(got) != `{"type":"OPEN"}` {
		t.Fatalf("first frame %q, %v", got, err)
	}
	if err := w.write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got, err := w.read(); err != nil || string(got) != "second" {
		t.Fatalf("second frame %q, %v", got, err)
	}
}

func TestWSHandshakeRefused(t *testing.T) {
	for name, c := range map[string]struct {
		resp, want string
	}{
		"status":     {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "HTTP 403 Forbidden"},
		"accept":     {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n", "Sec-WebSocket-Accept"},
		"upgrade":    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "Upgrade"},
		"connection": {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n", "Connection"},
		"garbage":    {"SSH-2.0-OpenSSH\r\n\r\n", "malformed HTTP"},
	} {
		t.Run(name, func(t *testing.T) {
			u := wsTestServer(t, func(p *wsPeer) { p.write([]byte(c.resp)) })
			_, err := dialWS(t.Context(), u, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "loadgen: dial ") {
				t.Fatalf("dial: %v, want an error about %s", err, c.want)
			}
		})
	}
}

func TestWSHandshakeTimeout(t *testing.T) {
	u := wsTestServer(t, func(p *wsPeer) { p.br.ReadByte() }) // never answers
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := dialWS(ctx, u, nil); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("dial to a silent server: %v after %v", err, time.Since(start))
	}
}

func TestWSFragmentsAndPings(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 7000) // 70,000 bytes: a 64-bit length
	mid := bytes.Repeat([]byte("m"), 300)            // a 16-bit length
	pongs := make(chan string, 2)
	u := wsTestServer(t, func(p *wsPeer) {
		var b []byte
		b = append(b, serverFrame(true, opBinary, []byte("skipped"))...)
		b = append(b, serverFrame(false, opText, []byte("hel"))...)
		b = append(b, serverFrame(true, opPing, []byte("p1"))...)
		b = append(b, serverFrame(false, opContinuation, []byte("lo "))...)
		b = append(b, serverFrame(true, opPong, []byte("unasked"))...)
		b = append(b, serverFrame(true, opContinuation, []byte("world"))...)
		b = append(b, serverFrame(true, opText, mid)...)
		b = append(b, serverFrame(true, opText, long)...)
		b = append(b, serverFrame(true, opPing, nil)...)
		b = append(b, serverFrame(true, opText, []byte("end"))...)
		p.accept(nil)
		for len(b) > 0 { // dribble the frames, splitting headers
			n := min(len(b), 1+rand.IntN(3000))
			p.write(b[:n])
			b = b[n:]
		}
		for range 2 {
			f := p.mustFrame()
			if f.op != opPong {
				t.Errorf("server got %+v, want a pong", f)
			}
			pongs <- string(f.payload)
		}
		p.mustFrame() // close
	})
	w := dialTest(t, u)
	for _, want := range [][]byte{[]byte("hello world"), mid, long, []byte("end")} {
		got, err := w.read()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes %.20q, %v; want %d bytes %.20q", len(got), got, err, len(want), want)
		}
	}
	if p := <-pongs; p != "p1" {
		t.Errorf("pong %q, want p1", p)
	}
	if p := <-pongs; p != "" {
		t.Errorf("pong %q, want empty", p)
	}
}

func TestWSMasking(t *testing.T) {
	sizes := []int{0, 1, 7, 8, 9, 31, 32, 33, 125, 126, 200, 1<<16 - 1, 1 << 16, 70000}
	payloads := make([][]byte, len(sizes))
	for i, n := range sizes {
		payloads[i] = make([]byte, n)
		for j := range payloads[i] {
			payloads[i][j] = byte(rand.IntN(256))
		}
	}
	got := make(chan clientFrame, len(sizes)+1)
	u := wsTestServer(t, func(p *wsPeer) {
		p.accept(nil)
		for range len(sizes) + 1 {
			got <- p.mustFrame()
		}
	})
	w := dialTest(t, u)
	if err := w.writeFrames(len(sizes), func(b []byte, i int) []byte { return append(b, payloads[i]...) }); err != nil {
		t.Fatal(err)
	}
	if err := w.write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	keys := map[[4]byte]bool{}
	for i := range sizes {
		f := <-got
		if !f.fin || f.op != opText || !bytes.Equal(f.payload, payloads[i]) {
			t.Errorf("frame %d: fin %v op %d, %d bytes; want %d", i, f.fin, f.op, len(f.payload), sizes[i])
		}
		keys[f.key] = true
	}
	if f := <-got; string(f.payload) != "after" {
		t.Errorf("last frame %q", f.payload)
	}
	if len(keys) < len(sizes)-1 {
		t.Errorf("%d distinct mask keys in %d frames", len(keys), len(sizes))
	}
}

func TestMaskBytes(t *testing.T) {
	for n := range 100 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[i%4]
		}
		maskBytes(b, binary.LittleEndian.Uint32(key[:]))
		if !bytes.Equal(b, want) {
			t.Fatalf("maskBytes of %d bytes: %x, want %x", n, b, want)
		}
	}
}

func TestWSServerClose(t *testing.T) {
	reply := make(chan clientFrame, 1)
	u := wsTestServer(t, func(p *wsPeer) {
		p.accept(append(serverFrame(true, opText, []byte("last")),
			serverFrame(true, opClose, append([]byte{0x03, 0xf0}, "slow-consumer"...))...))
		reply <- p.mustFrame()
	})
	w := dialTest(t, u)
	if got, err := w.read(); err != nil || string(got) != "last" {
		t.Fatalf("read %q, %v", got, err)
	}
	_, err := w.read()
	if !errors.Is(err, errServerClosed) || !strings.Contains(err.Error(), "1008 slow-consumer") {
		t.Fatalf("read after the close frame: %v", err)
	}
	if f := <-reply; f.op != opClose || !bytes.Equal(f.payload, []byte{0x03, 0xf0}) {
		t.Errorf("the client answered %+v, want a close frame with status 1008", f)
	}
	if _, again := w.read(); again != err {
		t.Errorf("second read: %v, want %v", again, err)
	}
	if err := w.write([]byte("late")); !errors.Is(err, errCloseSent) {
		t.Errorf("write after the close: %v", err)
	}
}

func TestWSClientClose(t *testing.T) {
	frames := make(chan clientFrame, 2)
	eof := make(chan error, 1)
	u := wsTestServer(t, func(p *wsPeer) {
		p.accept(nil)
		frames <- p.mustFrame()
		frames <- p.mustFrame()
		_, err := p.readFrame()
		eof <- err
	})
	w := dialTest(t, u)
	readErr := make(chan error, 1)
	go func() {
		_, err := w.read()
		readErr <- err
	}()
	w.close([]byte("bye"))
	w.close([]byte("again")) // idempotent
	if f := <-frames; f.op != opText || string(f.payload) != "bye" {
		t.Errorf("first frame %+v, want the farewell", f)
	}
	if f := <-frames; f.op != opClose || !bytes.Equal(f.payload, closeNormal) {
		t.Errorf("second frame %+v, want a close frame with status 1000", f)
	}
	if err := <-eof; err != io.EOF {
		t.Errorf("after the close frame: %v, want EOF", err)
	}
	if err := <-readErr; err != ErrClosed {
		t.Errorf("read on a closed connection: %v, want ErrClosed", err)
	}
	if err := w.write([]byte("x")); err != ErrClosed {
		t.Errorf("write on a closed connection: %v, want ErrClosed", err)
	}
}

func TestWSProtocolErrors(t *testing.T) {
	masked := serverFrame(true, opText, []byte("abcd"))
	masked[1] |= 0x80
	masked = append(masked[:2], append([]byte{0, 0, 0, 0}, masked[2:]...)...)
	reserved := serverFrame(true, opText, []byte("x"))
	reserved[0] |= 0x40 // RSV1: no extension was negotiated
	longPing := serverFrame(true, opPing, make([]byte, 126))
	huge := []byte{0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for name, frame := range map[string][]byte{
		"masked":                masked,
		"reserved bit":          reserved,
		"opcode 3":              serverFrame(true, 0x3, nil),
		"opcode 0xb":            serverFrame(true, 0xb, nil),
		"lone continuation":     serverFrame(true, opContinuation, []byte("x")),
		"fragmented ping":       serverFrame(false, opPing, nil),
		"long ping":             longPing,
		"text inside a message": append(serverFrame(false, opText, []byte("a")), serverFrame(true, opText, []byte("b"))...),
		"huge":                  huge,
	} {
		t.Run(name, func(t *testing.T) {
			u := wsTestServer(t, func(p *wsPeer) {
				p.accept(frame)
				p.readFrame() // until the client closes
			})
			w := dialTest(t, u)
			if got, err := w.read(); !errors.Is(err, errProtocol) {
				t.Fatalf("read %q, %v; want a protocol error", got, err)
			}
		})
	}
}

// TestWSReaderGrows checks that the read buffer of a busy connection grows
// to readBufMax and that of a quiet one stays small.
func TestWSReaderGrows(t *testing.T) {
	frame := serverFrame(true, opText, bytes.Repeat([]byte("x"), 1000))
	const n = 200
	u := wsTestServer(t, func(p *wsPeer) {
		p.accept(serverFrame(true, opText, []byte("small")))
		p.readFrame() // the client's go-ahead
		p.write(bytes.Repeat(frame, n))
		p.readFrame()
	})
	w := dialTest(t, u)
	if _, err := w.read(); err != nil {
		t.Fatal(err)
	}
	if len(w.rd.buf) != readBufMin {
		t.Errorf("quiet connection's buffer is %d bytes, want %d", len(w.rd.buf), readBufMin)
	}
	w.write(nil)
	for i := range n {
		if got, err := w.read(); err != nil || len(got) != 1000 {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
	}
	if len(w.rd.buf) != readBufMax {
		t.Errorf("busy connection's buffer is %d bytes, want %d", len(w.rd.buf), readBufMax)
	}
}

// TestWSNoAllocs checks that sending and receiving a message allocates
// nothing once the connection's buffers have grown.
func TestWSNoAllocs(t *testing.T) {
	payload := appendNumbered(nil, 1, 2, 200)
	echo := serverFrame(true, opText, []byte(`{"seq":7,"v":1,"type":"message","room":"r","from":"a","to":"b","payload":`+string(payload)+`}`))
	u := wsTestServer(t, func(p *wsPeer) {
		p.accept(nil)
		for p.skipFrame() == nil {
			p.write(echo)
		}
	})
	c := &sbWSConn{ws: dialTest(t, u), stopped: true}
	m := Message{Type: TypeMessage, To: "b", Payload: payload}
	allocs := testing.AllocsPerRun(200, func() {
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
		got, err := c.Recv()
		if err != nil || got.From != "a" || got.Type != TypeMessage {
			t.Fatalf("Recv: %+v, %v", got, err)
		}
		if n, err := parseNumbered(got.Payload); err != nil || n.N != 1 || n.T != 2 {
			t.Fatalf("payload %s: %v", got.Payload, err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per message sent and received", allocs)
	}
}

// TestWSS dials a gorilla server over TLS through the drivers' URL
// handling.
func TestWSS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(kind, append([]byte("echo "), b...))
		}
	}))
	defer srv.Close()
	old := wsTLSConfig
	wsTLSConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	defer func() { wsTLSConfig = old }()
	u, err := wsBase(srv.URL)
	if err != nil || u.Scheme != "wss" {
		t.Fatalf("wsBase(%s) = %v, %v", srv.URL, u, err)
	}
	w := dialTest(t, u)
	if err := w.write([]byte("over TLS")); err != nil {
		t.Fatal(err)
	}
	if got, err := w.read(); err != nil || string(got) != "echo over TLS" {
		t.Fatalf("read %q, %v", got, err)
	}
}
