package longpoll

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// DefaultParkAfter is how long a GET waits on its handler's goroutine, with
// nothing to deliver, before it is parked: soon, as a waiting GET costs much
// more than a parked one, and a busy session's polls are answered sooner.
const DefaultParkAfter = 50 * time.Millisecond

// parkWriteTimeout bounds writing a parked poll's answer.
const parkWriteTimeout = 10 * time.Second

// pollPattern is the route of a poll, for the log lines of a parked poll's
// answer, which no longer has its request.
const pollPattern = "GET /v1/sessions/{session}/messages"

// A waiting GET holds a goroutine of net/http's for its connection, another
// that watches the connection for the client going away, their stacks, the
// connection's read and write buffers (4 KiB each) and the response's
// (2 KiB), the request and its contexts: about 30 KiB, which for an idle
// session is nearly all it costs. So a GET that has waited ParkAfter with
// nothing to deliver is parked: the transport hijacks its connection and
// keeps only the socket, the session's attachment and a timer, with no
// goroutine. Its answer (messages, the wait running out, the session
// superseded or ended, shutdown) is written by a goroutine started then,
// which hands the connection back to the HTTP server (ResumeConnsWith) to
// read the client's next request, as on any kept-alive connection.
//
// A client that goes away from a parked poll is noticed when its answer is
// written, at the latest when its wait runs out.

// ResumeConnsWith implements the HTTP server's add-on for transports that
// hijack connections to hand back: resume serves c's next requests as a
// new connection's, and reports false when it cannot (the server is not
// serving, or shutting down), and then the caller closes c. Without it no
// poll is parked.
func (t *Transport) ResumeConnsWith(resume func(c net.Conn) bool) { t.resume = resume }

// parked is one poll whose connection the transport holds, waiting without
// a goroutine.
type parked struct {
	t     *Transport
	s     *broker.Session
	att   *broker.Attachment
	after uint64
	conn  net.Conn
	hdr   []byte // the response's header lines the CORS handler set, rendered
	until time.Time
	timer *time.Timer
	state atomic.Int32 // waiting, parkedIdle or answering
	gone  atomic.Bool  // superseded, or the session ended
	fire  func()       // p.wake, made once
}

// States of a poll that may be parked.
const (
	waiting    = iota // on its handler's goroutine
	parkedIdle        // parked, no answer started
	answering         // parked, its answer being written
)

// onGone is the attachment's callback: it runs with the session's lock
// held, and only notes the news and starts the answer.
func (p *parked) onGone() {
	p.gone.Store(true)
	p.wake()
}

// wake starts the parked poll's answer, once: for messages, the end of its
// wait, its attachment gone, or shutdown. Before the poll is parked, and
// while its answer runs, it does nothing: both look again for what may
// have woken it once they are done (recheck).
func (p *parked) wake() {
	if p.state.CompareAndSwap(parkedIdle, answering) {
		go p.answer()
	}
}

// recheck wakes the parked poll for what wake may have missed while it was
// not parkedIdle: its attachment gone, its wait over, shutdown.
func (p *parked) recheck() {
	p.t.mu.Lock()
	stopping := p.t.stopping
	p.t.mu.Unlock()
	if stopping || p.gone.Load() || !time.Now().Before(p.until) {
		p.wake()
	}
}

// canPark reports whether r's connection may be parked: an HTTP/1.1
// request that keeps its connection, on a server that takes connections
// back.
func (t *Transport) canPark(w http.ResponseWriter, r *http.Request) bool {
	_, ok := w.(http.Hijacker)
	return ok && t.resume != nil && t.opts.ParkAfter > 0 && r.ProtoMajor == 1 && r.ProtoMinor == 1 && !r.Close
}

// park hijacks the poll's connection and waits without a goroutine until
// until; it reports false, with nothing changed, when the connection could
// not be hijacked. p.att is the poll's attachment, made with p.onGone.
func (t *Transport) park(w http.ResponseWriter, p *parked, until time.Time) bool {
	var hdr bytes.Buffer
	_ = w.Header().Write(&hdr)
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return false
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// A request sent before this one was answered (pipelining): kept
		// for the server, which reads it once the connection is back.
		early, _ := brw.Reader.Peek(n)
		conn = &prefixConn{Conn: conn, prefix: bytes.Clone(early)}
	}
	p.conn, p.hdr, p.until = conn, hdr.Bytes(), until
	p.fire = p.wake
	p.timer = time.AfterFunc(time.Until(until), p.fire)
	t.mu.Lock()
	t.parked[p] = struct{}{}
	t.mu.Unlock()
	p.state.Store(parkedIdle) // from here on wake answers
	p.recheck()
	p.att.OnPending(p.after, p.fire)
	return true
}

// answer writes the parked poll's answer, detaches it and gives the
// connection back to the server. It runs on a goroutine of its own.
func (p *parked) answer() {
	t := p.t
	finished := false
	defer func() {
		if v := recover(); v != nil {
			t.log.Error("parked long-poll answer panicked", "panic", v)
			p.conn.Close()
			if !finished {
				p.done()
			}
		}
	}()
	p.timer.Stop()
	w := &bufferedResponse{h: make(http.Header, 4)}
	r := &http.Request{Method: http.MethodGet, Pattern: pollPattern}
	t.mu.Lock()
	stopping := t.stopping
	t.mu.Unlock()
	frames, _, wait, err := p.att.Pending(p.after)
	switch {
	case errors.Is(err, broker.ErrSuperseded):
		if p.s.Closed() {
			t.ended(w, r, p.s, p.after)
		} else {
			writeJSON(w, http.StatusOK, []byte("[]"))
		}
	case errors.Is(err, broker.ErrSessionClosed):
		t.refuse(w, r, broker.Errorf(broker.CodeSessionExpired, "the session has ended"))
	case err != nil:
		t.refuse(w, r, err)
	case wait == nil:
		writeJSON(w, http.StatusOK, joinFrames(frames))
	case !stopping && !p.gone.Load() && time.Now().Before(p.until):
		// Woken for nothing new (a wake races the read): wait on.
		p.timer.Reset(time.Until(p.until))
		p.state.Store(parkedIdle)
		p.recheck()
		p.att.OnPending(p.after, p.fire)
		return
	default:
		writeJSON(w, http.StatusOK, []byte("[]"))
	}
	_ = p.conn.SetWriteDeadline(time.Now().Add(parkWriteTimeout))
	_, werr := p.conn.Write(w.render(p.hdr))
	_ = p.conn.SetWriteDeadline(time.Time{})
	finished = true
	p.done()
	if werr != nil || !t.resume(p.conn) {
		p.conn.Close()
	}
}

// done ends the parked poll's hold on its session and on the transport.
func (p *parked) done() {
	p.att.Detach()
	p.t.mu.Lock()
	delete(p.t.parked, p)
	p.t.mu.Unlock()
	p.t.polls.Done()
}

// wakeParked answers every parked poll, at shutdown.
func (t *Transport) wakeParked() {
	t.mu.Lock()
	ps := make([]*parked, 0, len(t.parked))
	for p := range t.parked {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		p.wake()
	}
}

// bufferedResponse is the http.ResponseWriter of a parked poll's answer:
// the handlers' helpers write into it, and render turns it into the bytes
// of an HTTP/1.1 response.
type bufferedResponse struct {
	h      http.Header
	status int
	body   []byte
}

func (b *bufferedResponse) Header() http.Header { return b.h }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	b.body = append(b.body, p...)
	return len(p), nil
}

// render returns the response, with the header lines extra (each ending in
// CRLF) after the response's own.
func (b *bufferedResponse) render(extra []byte) []byte {
	status := b.status
	if status == 0 {
		status = http.StatusOK
	}
	var out bytes.Buffer
	out.Grow(256 + len(extra) + len(b.body))
	out.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.h.Set("Content-Length", strconv.Itoa(len(b.body)))
	b.h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = b.h.Write(&out)
	out.Write(extra)
	out.WriteString("\r\n")
	out.Write(b.body)
	return out.Bytes()
}

// prefixConn is a connection whose first reads return prefix: bytes read
// from it before it was hijacked.
type prefixConn struct {
	net.Conn
	mu     sync.Mutex
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}
