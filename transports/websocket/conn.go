package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// conn is one WebSocket connection, framed by this package after gorilla's
// handshake.
//
// An idle connection holds no goroutine and no buffer: where the transport
// has a readiness poller (Linux), a worker goroutine (workers.go) takes the
// connection when its socket becomes readable, reads and handles whatever
// frames have arrived, and goes on to other work; the bytes of a frame not
// yet whole are kept, no more. Elsewhere a goroutine reads for the life of
// the connection. Writes are made by a worker only while the session has
// frames pending (flush), and control frames (pong, ping, close) by whoever
// needs them: every write is one call on the socket, so frames never
// interleave.
type conn struct {
	t    *Transport
	nc   net.Conn
	raw  syscall.RawConn // for reads that must not wait; nil without a poller
	sess *broker.Session

	after    uint64                 // last seq written; owned by the flushing goroutine
	flushing atomic.Bool            // a flush runs
	kickFn   func()                 // kick, made once
	heard    atomic.Bool            // the peer was heard from since tick last ran
	tracked  bool                   // counted by the transport; set before serve starts
	connIdx  int32                  // its index in the transport's registry, while tracked
	ended    atomic.Bool            // set once, under mu, by end
	poll     atomic.Pointer[poller] // the poller it is registered with
	rstate   atomic.Int32           // readIdle, reading or readAgain

	mu  sync.Mutex // guards att, and orders it with ended
	att *broker.Attachment

	// Keep-alive state, owned by tick (which the transport's wheel runs):
	// monotonic times, as since epoch.
	lastHeard time.Duration // when tick last found the peer heard from
	lastPing  time.Duration

	// Read state, owned by whichever goroutine is reading (one at a time,
	// ordered by rstate).
	pollID uint32     // the poller's key, 0 until registered; written under the poller's lock
	rs     *readState // a frame not yet whole, a message in fragments; nil when none
	joined *broker.Joined
}

// readState is what a connection's reads keep between two reads, rarely
// anything: apart from the connection, so that an idle one does not carry
// it.
type readState struct {
	partial  []byte // the start of a frame not yet whole
	skip     int    // bytes of a refused frame still to be discarded
	fragOp   byte   // opcode of a fragmented message being read; 0 if none
	frag     []byte // its payload so far
	fragDrop bool   // it is too large: discard its remaining fragments
}

// rd returns the connection's read state, made at first use.
func (c *conn) rd() *readState {
	if c.rs == nil {
		c.rs = new(readState)
	}
	return c.rs
}

// takePartial returns the start of a frame not yet whole, and forgets it.
func (c *conn) takePartial() []byte {
	if c.rs == nil {
		return nil
	}
	p := c.rs.partial
	c.rs.partial = nil
	return p
}

// keepPartial keeps b, the start of a frame not yet whole, for the next
// read, and lets the read state go when it holds nothing.
func (c *conn) keepPartial(b []byte) {
	switch rs := c.rs; {
	case len(b) > 0:
		c.rd().partial = append([]byte(nil), b...)
	case rs != nil && rs.skip == 0 && rs.fragOp == 0 && rs.frag == nil && !rs.fragDrop:
		c.rs = nil
	}
}

// Read outcomes that are not failures of the connection.
var (
	errWouldBlock   = errors.New("websocket: no data ready")
	errJoined       = errors.New("websocket: joined")
	errPeerClosed   = errors.New("websocket: closed by the peer")
	errSessionEnded = errors.New("websocket: session ended")
)

// errFrameType refuses binary frames.
var errFrameType = errors.New("websocket: envelopes travel in text frames")

// epoch is the origin of the connections' keep-alive times.
var epoch = time.Now()

func newConn(t *Transport, nc net.Conn) *conn {
	c := &conn{t: t, nc: nc, lastHeard: time.Since(epoch)}
	c.kickFn = c.kick
	c.lastPing = c.lastHeard
	return c
}

// readBufferSize is the size of the pooled buffers reads go into: enough
// for a busy connection's backlog in one system call.
const readBufferSize = 16 << 10

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// serve reads the join, admits the peer and sets the connection going. Its
// goroutine ends then, letting the join's deep stack go.
func (c *conn) serve() {
	defer func() {
		if p := recover(); p != nil {
			c.t.log.Error("websocket connection panicked", "panic", p)
			c.closeWith(closeInternal, "internal error")
		}
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.t.opts.JoinTimeout))
	err := c.readJoin()
	_ = c.nc.SetReadDeadline(time.Time{})
	if !errors.Is(err, errJoined) {
		c.refuseJoin(err)
		return
	}
	joined := c.joined
	c.joined = nil
	c.sess, c.after = joined.Session, joined.After
	att := c.sess.AttachFunc(func() {
		go c.closeWith(closeSuperseded, "superseded by a newer connection of this session")
	})
	c.mu.Lock()
	c.att = att
	ended := c.ended.Load()
	c.mu.Unlock()
	if ended { // closed meanwhile (shut down)
		att.Detach()
		return
	}
	if err := c.write(joined.Welcome); err != nil {
		c.end()
		return
	}
	c.t.wheel.schedule(c, c.t.tickEvery())
	c.kick()
	if p := c.t.poller(); p != nil && c.useRaw() {
		c.poll.Store(p)
		c.rstate.Store(reading)
		c.readable(p) // frames that came with the join, then wait
		return
	}
	go c.readLoop()
}

// useRaw prepares reads that do not wait, reporting whether the socket
// allows them.
func (c *conn) useRaw() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	c.raw = raw
	return true
}

// readJoin reads until the join frame has been handled, returning errJoined
// then, or why it was not. Bytes after the join are kept in partial.
func (c *conn) readJoin() error {
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf, have, err := c.pump(*bp, 0, c.nc.Read)
	if errors.Is(err, errJoined) {
		c.keepPartial(buf[:have])
	}
	return err
}

// refuseJoin tells the peer why it was not admitted and closes.
func (c *conn) refuseJoin(err error) {
	var pe *broker.Error
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, errPeerClosed), errors.Is(err, io.EOF):
		c.end()
		return
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			pe = broker.Errorf(broker.CodeBadRequest, "no join within %v", c.t.opts.JoinTimeout)
		} else if fail := c.failure(err); fail != nil {
			c.closeWith(fail.code, fail.text)
			return
		} else {
			c.end()
			return
		}
	}
	level := slog.LevelInfo
	if pe.Code == broker.CodeInternal {
		level = slog.LevelError
	}
	c.t.joinLog.Log(c.t.log, level, "join refused", "code", pe.Code, "error", pe, "remote", c.nc.RemoteAddr().String())
	_ = c.write(broker.ErrorFrame(pe))
	if errors.Is(err, broker.ErrShutdown) {
		c.closeWith(closeGoingAway, "broker shutting down")
		return
	}
	c.closeWith(closePolicyViolation, string(pe.Code))
}

// Reading states of a connection that the poller watches.
const (
	readIdle  = iota // waiting for the poller
	reading          // a goroutine is reading
	readAgain        // one is, and the poller has reported more bytes since
)

// wake is the poller's word that c's socket has new bytes: it starts a
// reading goroutine, or tells the running one to read again.
func (c *conn) wake(p *poller) {
	for {
		switch c.rstate.Load() {
		case readIdle:
			if c.rstate.CompareAndSwap(readIdle, reading) {
				c.t.work.submit(task{c: c, p: p})
				return
			}
		case reading:
			if c.rstate.CompareAndSwap(reading, readAgain) {
				return
			}
		default:
			return
		}
	}
}

// readable reads and handles what the socket holds, until the poller has
// reported nothing more; the first call registers the socket with it. It
// runs on a goroutine of its own each time the socket becomes readable
// (rstate is reading).
func (c *conn) readable(p *poller) {
	defer c.recoverPanic()
	for {
		if err := c.readAvailable(); !errors.Is(err, errWouldBlock) {
			c.readEnded(err)
			return
		}
		if c.pollID == 0 {
			if err := p.register(c); err != nil {
				c.sess.Logger().Warn("websocket: cannot wait for the socket", "error", err)
				c.closeWith(closeInternal, "internal error")
				return
			}
		}
		if c.rstate.CompareAndSwap(reading, readIdle) {
			return
		}
		c.rstate.Store(reading) // readAgain: more came
	}
}

// readAvailable reads what the socket holds into a pooled buffer, handles
// every whole frame and keeps the start of a frame not yet whole. It
// returns errWouldBlock once the socket is drained.
func (c *conn) readAvailable() error {
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf := *bp
	have := 0
	if partial := c.takePartial(); len(partial) > len(buf) {
		buf = append(partial, make([]byte, readBufferSize)...)
		have = len(partial)
	} else {
		have = copy(buf, partial)
	}
	buf, have, err := c.pump(buf, have, c.readNow)
	c.keepPartial(buf[:have])
	return err
}

// readLoop reads for the life of the connection, where there is no poller.
func (c *conn) readLoop() {
	defer c.recoverPanic()
	buf := make([]byte, 4<<10)
	partial := c.takePartial()
	have := copy(buf, partial)
	if len(partial) > len(buf) {
		buf, have = partial, len(partial)
	}
	_, _, err := c.pump(buf, have, c.nc.Read)
	c.readEnded(err)
}

// recoverPanic, deferred by a joined connection's reads and flushes, turns
// a panic into the end of that connection alone, with 1011.
func (c *conn) recoverPanic() {
	if p := recover(); p != nil {
		c.sess.Logger().Error("websocket connection panicked", "panic", p)
		c.closeWith(closeInternal, "internal error")
	}
}

// pump reads with read into buf, which holds have bytes already, and
// handles each whole frame, until read or a frame's handling fails. It
// returns the buffer (grown for a frame larger than it) and the bytes of a
// frame not yet whole at its start.
func (c *conn) pump(buf []byte, have int, read func([]byte) (int, error)) ([]byte, int, error) {
	for {
		used, need, err := c.consume(buf[:have])
		have = copy(buf, buf[used:have])
		if err != nil {
			return buf, have, err
		}
		if need > len(buf) {
			buf = append(buf[:have], make([]byte, need-have)...)
		}
		n, err := read(buf[have:])
		if n > 0 {
			have += n
			c.heard.Store(true)
			if err != nil { // handle what came first
				used, _, cerr := c.consume(buf[:have])
				have = copy(buf, buf[used:have])
				if cerr != nil {
					err = cerr
				}
			}
		}
		if err != nil {
			return buf, have, err
		}
	}
}

// consume handles the whole frames at the start of b, returning how many
// bytes they took and, when the next frame is not whole, how many bytes it
// needs if that is known.
func (c *conn) consume(b []byte) (used, need int, err error) {
	hardMax := 16 * c.t.maxEnv // past this the connection is failed with 1009
	for used < len(b) {
		if c.rs != nil && c.rs.skip > 0 {
			k := min(c.rs.skip, len(b)-used)
			used += k
			c.rs.skip -= k
			continue
		}
		h, ok, err := parseHeader(b[used:], hardMax)
		if err != nil || !ok {
			return used, 0, err
		}
		if h.op < opClose && h.length > c.t.maxEnv {
			used += h.size
			c.rd().skip = h.length
			if err := c.tooLarge(h); err != nil {
				return used, 0, err
			}
			continue
		}
		if len(b)-used < h.size+h.length {
			return used, h.size + h.length, nil
		}
		p := b[used+h.size : used+h.size+h.length]
		unmask(p, h.key)
		used += h.size + h.length
		if err := c.frame(h, p); err != nil {
			return used, 0, err
		}
	}
	return used, 0, nil
}

// tooLarge refuses a data frame longer than the largest envelope; its
// payload, and the rest of its message, are discarded.
func (c *conn) tooLarge(h header) error {
	rs := c.rd()
	switch {
	case h.op == opContinuation && rs.fragOp == 0:
		return errContinuation
	case h.op != opContinuation && rs.fragOp != 0:
		return errInterleaved
	case h.op != opContinuation && !h.fin:
		rs.fragOp = h.op
	case h.op == opContinuation && h.fin:
		rs.fragOp = 0
	}
	if rs.fragDrop {
		if rs.fragOp == 0 {
			rs.fragDrop = false
		}
		return nil // refused already
	}
	rs.frag = nil
	rs.fragDrop = rs.fragOp != 0
	return c.refuse(broker.Errorf(broker.CodeTooLarge, "envelope is over %d bytes, the limit is %d", h.length, c.t.maxEnv))
}

// frame acts on one whole frame whose payload is p.
func (c *conn) frame(h header, p []byte) error {
	switch h.op {
	case opPing:
		return c.writeControl(opPong, p)
	case opPong:
		return nil // heard: the read has been noted
	case opClose:
		code, err := closeCode(p)
		if err != nil {
			return err
		}
		if code == closeNoStatus {
			code = closeNormal
		}
		_ = c.writeControl(opClose, closePayload(code, ""))
		return errPeerClosed
	case opText, opBinary:
		if c.rs != nil && c.rs.fragOp != 0 {
			return errInterleaved
		}
		if !h.fin {
			rs := c.rd()
			rs.fragOp = h.op
			rs.frag = append([]byte(nil), p...)
			return nil
		}
		return c.message(h.op, p)
	}
	// A continuation.
	if c.rs == nil || c.rs.fragOp == 0 {
		return errContinuation
	}
	rs := c.rs
	if !rs.fragDrop {
		if len(rs.frag)+len(p) > c.t.maxEnv {
			rs.frag, rs.fragDrop = nil, true
			if err := c.refuse(broker.Errorf(broker.CodeTooLarge, "envelope is over %d bytes, the limit is %d", c.t.maxEnv, c.t.maxEnv)); err != nil {
				return err
			}
		} else {
			rs.frag = append(rs.frag, p...)
		}
	}
	if !h.fin {
		return nil
	}
	op, data, drop := rs.fragOp, rs.frag, rs.fragDrop
	rs.fragOp, rs.frag, rs.fragDrop = 0, nil, false
	if drop {
		return nil
	}
	return c.message(op, data)
}

// message handles one whole message: the join, before the peer has joined,
// then envelopes of its session. data is not kept past the call.
func (c *conn) message(op byte, data []byte) error {
	if op != opText {
		return c.refuse(broker.Errorf(broker.CodeBadRequest, "%v", errFrameType))
	}
	if c.sess == nil {
		return c.join(data)
	}
	if err := c.sess.HandleRaw(context.Background(), data); errors.Is(err, broker.ErrSessionClosed) {
		return errSessionEnded
	}
	return nil
}

// refuse tells the peer that one of its frames was refused; before the
// join, that ends the connection.
func (c *conn) refuse(e *broker.Error) error {
	if c.sess == nil {
		return e
	}
	c.sess.Refuse("", e)
	return nil
}

// join admits the peer whose join envelope is data, returning errJoined.
func (c *conn) join(data []byte) error {
	env, err := broker.Decode(data, c.t.maxEnv)
	if err != nil {
		return err
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		return err
	}
	req.Client = broker.ClientAddr(c.nc.RemoteAddr().String())
	joined, err := c.t.b.Join(context.Background(), req)
	if err != nil {
		if pe := (*broker.Error)(nil); errors.As(err, &pe) && pe.Ref == "" {
			pe.Ref = env.ID
		}
		return err
	}
	c.joined = joined
	return errJoined
}

// closing is how a failed connection is closed.
type closing struct {
	code int
	text string
}

// failure is the close a read error calls for; nil for a connection that
// just ended.
func (c *conn) failure(err error) *closing {
	var pe errProtocol
	switch {
	case errors.As(err, &pe):
		return &closing{closeProtocolError, string(pe)}
	case errors.Is(err, errTooBig):
		return &closing{closeTooBig, fmt.Sprintf("frame over %d bytes", 16*c.t.maxEnv)}
	}
	return nil
}

// readEnded ends the connection after reading stopped with err.
func (c *conn) readEnded(err error) {
	if fail := c.failure(err); fail != nil {
		c.sess.Logger().Info("websocket protocol error", "error", err)
		c.closeWith(fail.code, fail.text)
		return
	}
	if errors.Is(err, errSessionEnded) {
		c.closeWith(closeNormal, "session ended")
		return
	}
	if !errors.Is(err, errPeerClosed) && !c.ended.Load() {
		c.sess.Logger().Debug("websocket read ended", "error", err)
	}
	c.end()
}

// tick pings the peer when a ping is due, or drops the connection once it
// has been silent for the idle timeout, and schedules itself for the next
// time on the transport's wheel. Reads only raise a flag, which tick turns
// into a time.
func (c *conn) tick() {
	defer c.recoverPanic()
	if c.ended.Load() {
		return
	}
	now := time.Since(epoch)
	if c.heard.Swap(false) {
		c.lastHeard = now
	}
	if silent := now - c.lastHeard; silent >= c.t.opts.IdleTimeout {
		c.sess.Logger().Info("websocket connection silent; dropped", "silent", silent.Round(time.Millisecond))
		c.closeWith(closeGoingAway, "idle timeout")
		return
	}
	if now-c.lastPing >= c.t.opts.PingInterval {
		c.lastPing = now
		if err := c.writeControl(opPing, nil); err != nil {
			c.end()
			return
		}
	}
	c.t.wheel.schedule(c, min(c.t.tickEvery(), c.t.opts.PingInterval-(now-c.lastPing)))
}

// writeControl writes one control frame within the write timeout.
func (c *conn) writeControl(op byte, payload []byte) error {
	var a [2 + maxControlPayload]byte
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
	_, err := c.nc.Write(appendFrame(a[:0], op, payload))
	return err
}

// closeWith sends a close frame, then ends the connection. It may be called
// from any goroutine, more than once.
func (c *conn) closeWith(code int, text string) {
	if c.ended.Load() {
		return
	}
	var a [2 + maxControlPayload]byte
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeGrace))
	_, _ = c.nc.Write(appendFrame(a[:0], opClose, closePayload(code, text)))
	c.end()
}

// end closes the connection and lets its session go; the first call does.
func (c *conn) end() {
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		return
	}
	c.ended.Store(true)
	att := c.att
	c.mu.Unlock()
	if p := c.poll.Load(); p != nil {
		p.remove(c)
	}
	_ = c.nc.Close()
	if att != nil {
		att.Detach()
	}
	if c.tracked {
		c.t.untrack(c)
	}
}

// write writes one envelope as a text frame within the write timeout.
func (c *conn) write(data []byte) error { return c.writeFrames([][]byte{data}) }

// writeFrames writes envelopes as text frames, as many as fit in one
// buffer per write call: a busy connection's queue goes out in few system
// calls.
func (c *conn) writeFrames(frames [][]byte) error {
	bp := batchPool.Get().(*[]byte)
	defer batchPool.Put(bp)
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
	for len(frames) > 0 {
		b := (*bp)[:0]
		for len(frames) > 0 && (len(b) == 0 || len(b)+len(frames[0])+10 <= batchSize) {
			b = appendTextFrame(b, frames[0])
			frames = frames[1:]
		}
		*bp = b
		if _, err := c.nc.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// batchSize is how many bytes of frames one write call carries at most
// (a larger single frame goes alone).
const batchSize = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

// kick starts a flush unless one runs.
func (c *conn) kick() {
	if c.flushing.CompareAndSwap(false, true) {
		c.t.work.submit(task{c: c})
	}
}

// flush writes whatever the session has pending, then asks to be kicked
// when there is more, and ends. A failed write ends the connection.
func (c *conn) flush() {
	defer c.recoverPanic()
	for {
		frames, last, err := c.att.Take(c.after)
		if errors.Is(err, broker.ErrSuperseded) {
			return
		}
		var pe *broker.Error
		switch {
		case errors.As(err, &pe):
			_ = c.write(broker.ErrorFrame(pe))
			fallthrough
		case errors.Is(err, broker.ErrSessionClosed):
			c.closeWith(closeNormal, "session ended")
			return
		case err != nil:
			// The session's store is unreachable for now: try again soon.
			c.sess.Logger().Warn("websocket flush: the mailbox is unreachable; retrying", "error", err)
			c.flushing.Store(false)
			time.AfterFunc(retryFlush, c.kick)
			return
		}
		if len(frames) == 0 {
			c.flushing.Store(false)
			c.att.OnPending(c.after, c.kickFn)
			return
		}
		if err := c.writeFrames(frames); err != nil {
			if !c.ended.Load() {
				c.sess.Logger().Info("websocket write failed", "error", err)
			}
			c.end()
			return
		}
		c.after = last
	}
}
