package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	mrand "math/rand/v2"
)

// The WebSocket client of the drivers (RFC 6455), reduced to what they need:
// text messages, no extensions, no subprotocol. It is lean so that the load
// generator, which shares the machine with the server under test, spends as
// little CPU per message as it can, and the same for every server: frames
// are read in place from a large buffer and written, masked, with one system
// call per batch.

// wsGUID is the key suffix of the handshake (RFC 6455, section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Sizes of the WebSocket client.
const (
	// readBufMin is the read buffer a connection starts with; an idle
	// connection keeps it.
	readBufMin = 4 << 10
	// readBufMax is the size to which the read buffer doubles while reads
	// fill it, so that a busy connection takes everything pending in one
	// system call.
	readBufMax = 64 << 10
	// handshakeBuf is the buffer the handshake's response is read with.
	handshakeBuf = 1 << 10
	// maxMessage bounds a message from the server.
	maxMessage = 16 << 20
	// writeBufKeep is the largest write buffer a connection keeps between
	// writes.
	writeBufKeep = 256 << 10
	// maxFrameHeader is the longest header of a client frame: 2 bytes, an
	// 8-byte length and the 4-byte mask key. Frames are encoded after this
	// much room and moved back over what the header leaves unused.
	maxFrameHeader = 14
	// deadlineSlack is how much of writeWait may pass before a write
	// deadline is set again: setting one costs more than the write of a
	// small frame, so a write's deadline is between writeWait −
	// deadlineSlack and writeWait away.
	deadlineSlack = time.Second
)

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// closeNormal is the payload of the close frame Close sends: status 1000.
var closeNormal = []byte{0x03, 0xe8}

// frameRoom is appended before every frame's payload, to hold its header.
var frameRoom [maxFrameHeader]byte

// Errors of the WebSocket client.
var (
	// errServerClosed is wrapped by the error read returns after the
	// server's close frame, with its status and reason.
	errServerClosed = errors.New("loadgen: closed by the server")
	// errCloseSent is returned by writes after a close frame was sent.
	errCloseSent = errors.New("loadgen: close frame already sent")
	// errProtocol is wrapped by errors of frames that break RFC 6455.
	errProtocol = errors.New("loadgen: WebSocket protocol error")
	// errBadHandshake is wrapped by a refused or malformed handshake.
	errBadHandshake = errors.New("bad handshake")
)

// wsTLSConfig is the TLS configuration of wss connections, whose
// ServerName each dial sets; nil means the defaults. Tests set it to trust
// their server.
var wsTLSConfig *tls.Config

// wsConn is a client WebSocket. One goroutine reads at a time (Dial, then
// Recv); writes come from the sender, the receiver (acknowledgements,
// pongs) and timers (keep-alives, acknowledgements), and are serialized by
// wmu; close may come from anywhere.
type wsConn struct {
	nc      net.Conn
	once    sync.Once
	closing chan struct{} // closed by close

	// The reader's state, owned by the goroutine that reads.
	rd    wsReader
	msg   []byte // a fragmented message being put together, reused
	msgOp byte   // the opcode of that message; 0 when there is none
	rerr  error  // the error that ended reading, returned from then on

	wmu       sync.Mutex // guards the writer's state
	wbuf      []byte     // frames being written, reused
	mask      mrand.PCG  // mask keys
	deadline  time.Time  // the write deadline set on nc
	closeSent bool       // a close frame was written; nothing may follow it
	werr      error      // the write error that broke the stream
}

// dialWS opens a WebSocket to u. It sends the Origin a page served by the
// same host would, which passes a same-origin check. Proxies are not used.
// The connection comes from src's next local address (nil: the system's
// choice).
func dialWS(ctx context.Context, u *url.URL, src *sources) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	nc, err := dialTCP(ctx, u, src)
	if err == nil {
		var w *wsConn
		if w, err = handshake(ctx, nc, u); err == nil {
			return w, nil
		}
		nc.Close()
	}
	if ctx.Err() != nil && !errors.Is(err, errBadHandshake) {
		err = ctx.Err()
	}
	return nil, fmt.Errorf("loadgen: dial %s: %w", u.Redacted(), err)
}

// dialTCP connects to u's host from src's next local address, with TLS for
// wss.
func dialTCP(ctx context.Context, u *url.URL, src *sources) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	nc, err := src.dial(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || u.Scheme != "wss" {
		return nc, err
	}
	cfg := &tls.Config{}
	if wsTLSConfig != nil {
		cfg = wsTLSConfig.Clone()
	}
	cfg.ServerName = u.Hostname()
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// handshake upgrades nc to a WebSocket to u, within ctx.
func handshake(ctx context.Context, nc net.Conn, u *url.URL) (*wsConn, error) {
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	if _, err := nc.Write(upgradeRequest(u, key)); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, handshakeBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if err := checkUpgrade(resp, key); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	w := &wsConn{nc: nc, closing: make(chan struct{})}
	w.rd.init(nc, br)
	var seed [16]byte
	rand.Read(seed[:])
	w.mask.Seed(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))
	return w, nil
}

// upgradeRequest returns the opening handshake's request for u.
func upgradeRequest(u *url.URL, key string) []byte {
	origin := (&url.URL{Scheme: httpScheme(u.Scheme), Host: u.Host}).String()
	b := make([]byte, 0, 256)
	b = append(b, "GET "...)
	b = append(b, u.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.Host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	b = append(b, "\r\nOrigin: "...)
	b = append(b, origin...)
	return append(b, "\r\n\r\n"...)
}

// checkUpgrade checks the server's answer to the opening handshake.
func checkUpgrade(resp *http.Response, key string) error {
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fmt.Errorf("%w (HTTP %s)", errBadHandshake, resp.Status)
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return fmt.Errorf("%w: Upgrade is %q", errBadHandshake, resp.Header.Get("Upgrade"))
	case !hasToken(resp.Header.Values("Connection"), "upgrade"):
		return fmt.Errorf("%w: Connection is %q", errBadHandshake, resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key):
		return fmt.Errorf("%w: wrong Sec-WebSocket-Accept", errBadHandshake)
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return fmt.Errorf("%w: unasked extensions %q", errBadHandshake, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return nil
}

// acceptKey returns the Sec-WebSocket-Accept that answers key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// hasToken reports whether one of the comma-separated lists in values holds
// token, in any case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// httpScheme returns the HTTP scheme that goes with WebSocket scheme ws.
func httpScheme(ws string) string {
	if ws == "wss" {
		return "https"
	}
	return "http"
}

// abort closes the socket at once, without a close frame: for a handshake
// or join that ran out of time.
func (w *wsConn) abort() { w.nc.Close() }

// write sends one text frame.
func (w *wsConn) write(p []byte) error {
	return w.writeFrames(1, func(b []byte, _ int) []byte { return append(b, p...) })
}

// writeFrames sends n text frames in one write: encode(b, i) appends the
// payload of frame i to b and returns it.
func (w *wsConn) writeFrames(n int, encode func(b []byte, i int) []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.writable(); err != nil {
		return err
	}
	b := w.wbuf[:0]
	for i := range n {
		start := len(b)
		b = encode(append(b, frameRoom[:]...), i)
		b = w.seal(b, start, opText)
	}
	return w.flush(b)
}

// writeControl sends a control frame; after a close frame nothing more is
// written. Errors show in the next write or read.
func (w *wsConn) writeControl(op byte, p []byte) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.writable() != nil {
		return
	}
	b := append(w.wbuf[:0], frameRoom[:]...)
	b = w.seal(append(b, p...), 0, op)
	w.flush(b)
	if op == opClose {
		w.closeSent = true
	}
}

// writable returns why nothing can be written any more, or nil. w.wmu must
// be held.
func (w *wsConn) writable() error {
	select {
	case <-w.closing:
		return ErrClosed
	default:
	}
	if w.werr != nil {
		return w.werr
	}
	if w.closeSent {
		return errCloseSent
	}
	return nil
}

// seal turns b[start:], maxFrameHeader bytes of room and a payload, into a
// masked frame of opcode op, and returns b up to the frame's end. w.wmu
// must be held.
func (w *wsConn) seal(b []byte, start int, op byte) []byte {
	n := len(b) - start - maxFrameHeader
	h := b[start : start+maxFrameHeader]
	h[0] = 0x80 | op // FIN
	hl := 2
	switch {
	case n < 126:
		h[1] = 0x80 | byte(n) // MASK
	case n < 1<<16:
		h[1] = 0x80 | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		hl = 4
	default:
		h[1] = 0x80 | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		hl = 10
	}
	key := uint32(w.mask.Uint64())
	binary.LittleEndian.PutUint32(h[hl:], key)
	hl += 4
	p := b[start+hl : start+hl+n]
	copy(p, b[start+maxFrameHeader:])
	maskBytes(p, key)
	return b[:start+hl+n]
}

// maskBytes masks b with key, whose bytes in little-endian order are the
// mask's, 8 bytes at a time.
func maskBytes(b []byte, key uint32) {
	k := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+32 <= len(b); i += 32 {
		q := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(q[0:], binary.LittleEndian.Uint64(q[0:])^k)
		binary.LittleEndian.PutUint64(q[8:], binary.LittleEndian.Uint64(q[8:])^k)
		binary.LittleEndian.PutUint64(q[16:], binary.LittleEndian.Uint64(q[16:])^k)
		binary.LittleEndian.PutUint64(q[24:], binary.LittleEndian.Uint64(q[24:])^k)
	}
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// flush writes b, the frames encoded in w.wbuf, with a write deadline, and
// keeps the buffer for the next write. w.wmu must be held.
func (w *wsConn) flush(b []byte) error {
	if cap(b) <= writeBufKeep {
		w.wbuf = b[:0]
	} else {
		w.wbuf = nil
	}
	if now := time.Now(); w.deadline.Sub(now) < writeWait-deadlineSlack {
		w.deadline = now.Add(writeWait)
		w.nc.SetWriteDeadline(w.deadline)
	}
	if _, err := w.nc.Write(b); err != nil {
		w.werr = err
		return err
	}
	return nil
}

// read returns the next text message. It is valid until the next read: a
// caller that keeps it copies it. Pings are answered; binary messages are
// skipped.
func (w *wsConn) read() ([]byte, error) {
	if w.rerr == nil {
		p, err := w.readMessage()
		if err == nil {
			return p, nil
		}
		w.rerr = err
	}
	select {
	case <-w.closing:
		return nil, ErrClosed
	default:
		return nil, w.rerr
	}
}

// readMessage reads frames until a text message is complete.
func (w *wsConn) readMessage() ([]byte, error) {
	for {
		fin, op, p, err := w.rd.frame()
		if err != nil {
			return nil, err
		}
		switch op {
		case opText, opBinary:
			if w.msgOp != 0 {
				return nil, fmt.Errorf("%w: a new message inside a fragmented one", errProtocol)
			}
			if !fin {
				w.msgOp, w.msg = op, append(w.msg[:0], p...)
			} else if op == opText {
				return p, nil
			}
		case opContinuation:
			if w.msgOp == 0 {
				return nil, fmt.Errorf("%w: a continuation frame outside a message", errProtocol)
			}
			if len(w.msg)+len(p) > maxMessage {
				return nil, fmt.Errorf("%w: message over %d bytes", errProtocol, maxMessage)
			}
			w.msg = append(w.msg, p...)
			if fin {
				op := w.msgOp
				w.msgOp = 0
				if op == opText {
					return w.msg, nil
				}
			}
		case opPing:
			w.writeControl(opPong, p)
		case opPong:
		case opClose:
			return nil, w.serverClosed(p)
		default:
			return nil, fmt.Errorf("%w: opcode %#x", errProtocol, op)
		}
	}
}

// serverClosed answers the server's close frame of payload p, echoing its
// status, and returns the error that ends reading.
func (w *wsConn) serverClosed(p []byte) error {
	if len(p) < 2 {
		w.writeControl(opClose, nil)
		return errServerClosed
	}
	w.writeControl(opClose, p[:2])
	return fmt.Errorf("%w: %d %s", errServerClosed, binary.BigEndian.Uint16(p), p[2:])
}

// close writes farewell (if any) and a close frame, in one write, then
// closes the socket.
func (w *wsConn) close(farewell []byte) error {
	w.once.Do(func() {
		w.wmu.Lock()
		if w.writable() == nil {
			w.nc.SetWriteDeadline(time.Now().Add(time.Second))
			b := w.wbuf[:0]
			if farewell != nil {
				b = w.seal(append(append(b, frameRoom[:]...), farewell...), 0, opText)
			}
			start := len(b)
			b = w.seal(append(append(b, frameRoom[:]...), closeNormal...), start, opClose)
			w.nc.Write(b)
			w.closeSent = true
		}
		close(w.closing)
		w.wmu.Unlock()
		w.nc.Close()
	})
	return nil
}

// wsReader buffers what the server sends and cuts frames from it in place.
type wsReader struct {
	src  net.Conn
	buf  []byte
	r, w int  // buf[r:w] is read and not yet taken
	grow bool // the last read filled the buffer: double it
}

// init starts the reader with what br, the handshake's reader, holds
// beyond the response.
func (b *wsReader) init(src net.Conn, br *bufio.Reader) {
	b.src = src
	b.buf = make([]byte, max(readBufMin, br.Buffered()))
	rest, _ := br.Peek(br.Buffered())
	b.w = copy(b.buf, rest)
}

// next takes the next n bytes, reading as needed. They stay valid until the
// next call.
func (b *wsReader) next(n int) ([]byte, error) {
	for b.w-b.r < n {
		if err := b.fill(n); err != nil {
			return nil, err
		}
	}
	p := b.buf[b.r : b.r+n : b.r+n]
	b.r += n
	return p, nil
}

// fill reads once, after making room for at least n bytes from b.r on:
// the buffer doubles after a read that filled it, grows to fit a frame
// larger than it, and moves what is unread to its front when the room
// after it runs short.
func (b *wsReader) fill(n int) error {
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	size := len(b.buf)
	if b.grow {
		size, b.grow = size*2, false
	}
	for size < n {
		size *= 2
	}
	switch {
	case size != len(b.buf):
		buf := make([]byte, size)
		b.w = copy(buf, b.buf[b.r:b.w])
		b.r, b.buf = 0, buf
	case b.r > 0 && (size-b.r < n || size-b.w < size/4):
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	m, err := b.src.Read(b.buf[b.w:])
	b.grow = b.w+m == len(b.buf) && len(b.buf) < readBufMax
	b.w += m
	if m > 0 {
		return nil
	}
	return err
}

// frame reads the next frame: its FIN bit, opcode and payload, which is
// valid until the next call.
func (b *wsReader) frame() (fin bool, op byte, p []byte, err error) {
	h, err := b.next(2)
	if err != nil {
		return false, 0, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	masked, n := h[1]&0x80 != 0, uint64(h[1]&0x7f)
	switch {
	case h[0]&0x70 != 0:
		return false, 0, nil, fmt.Errorf("%w: reserved bits set", errProtocol)
	case masked:
		return false, 0, nil, fmt.Errorf("%w: masked frame from the server", errProtocol)
	case op >= opClose && (!fin || n > 125):
		return false, 0, nil, fmt.Errorf("%w: fragmented or long control frame", errProtocol)
	}
	switch n {
	case 126:
		if h, err = b.next(2); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h))
	case 127:
		if h, err = b.next(8); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(h)
	}
	if n > maxMessage {
		return false, 0, nil, fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	p, err = b.next(int(n))
	return fin, op, p, err
}
