// Package ndjson is a Switchboard transport written outside the broker's
// tree: newline-delimited JSON over TCP, one envelope per line, so that a
// person can signal by hand with nc. It is the worked example of
// docs/adapters.md.
//
// Importing the package registers the transport as "ndjson". Its settings,
// under transports.ndjson in the config file or as environment variables:
//
//	listen: ":7070"        # SWITCHBOARD_TRANSPORTS_NDJSON_LISTEN
//	join_timeout: 10s      # SWITCHBOARD_TRANSPORTS_NDJSON_JOIN_TIMEOUT
//	idle_timeout: 120s     # SWITCHBOARD_TRANSPORTS_NDJSON_IDLE_TIMEOUT
//	write_timeout: 10s     # SWITCHBOARD_TRANSPORTS_NDJSON_WRITE_TIMEOUT
//
// The wire: the peer's first line is a join envelope; the broker answers
// with a welcome line, or an error line and closes. Then either side writes
// envelopes, one per line, in docs/protocol.md's format. A peer acknowledges
// with {"type":"ack","payload":{"seq":N}} and keeps a quiet connection open
// with {"type":"ping"}; the broker drops one that has sent nothing for the
// idle timeout. Closing the connection without a leave keeps the session for
// a resume, as on every transport.
package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Name is the transport's registered name.
const Name = "ndjson"

// Defaults of Options.
const (
	DefaultListen       = ":7070"
	DefaultJoinTimeout  = 10 * time.Second
	DefaultIdleTimeout  = 120 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// retryTake is how soon the writer asks again when the session's
	// mailbox (in Redis, in a cluster) could not be read.
	retryTake = time.Second
)

func init() {
	broker.Register(Name, func(o Options, _ broker.TransportOptions) (broker.Transport, error) {
		return New(o), nil
	})
}

// Options configures the transport. The zero value of every field means its
// default.
type Options struct {
	// Listen is the TCP address peers connect to. Default: DefaultListen.
	Listen string `yaml:"listen"`
	// JoinTimeout bounds how long a new connection may take to send its
	// join line. Default: DefaultJoinTimeout.
	JoinTimeout time.Duration `yaml:"join_timeout"`
	// IdleTimeout drops a connection that has sent nothing, not even a
	// ping, for this long. Default: DefaultIdleTimeout.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout drops a connection that takes longer than this to take
	// a write: a peer that stopped reading. Default: DefaultWriteTimeout.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

func (o *Options) init() {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = DefaultJoinTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
}

// Transport serves peers over newline-delimited JSON on TCP. Make it with
// New, then Run it (or Serve it on a listener of your own). It is safe for
// concurrent use.
type Transport struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	listening net.Addr // nil until Serve has its listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

var (
	_ broker.Transport    = (*Transport)(nil)
	_ broker.ReadyChecker = (*Transport)(nil)
)

// New returns a transport with opts.
func New(opts Options) *Transport {
	opts.init()
	return &Transport{opts: opts, log: slog.Default(), conns: make(map[net.Conn]struct{})}
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Ready implements broker.ReadyChecker: the node is not ready until the
// transport listens.
func (t *Transport) Ready() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listening == nil {
		return errors.New("not listening yet")
	}
	return nil
}

// Addr returns the address the transport listens on, or nil before it does.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.listening
}

// Run implements broker.Transport: it listens on Options.Listen and serves
// peers of b until ctx ends.
func (t *Transport) Run(ctx context.Context, b *broker.Broker) error {
	ln, err := net.Listen("tcp", t.opts.Listen)
	if err != nil {
		return err
	}
	return t.Serve(ctx, ln, b)
}

// Serve serves peers of b on ln until ctx ends; then it closes ln and every
// connection (their sessions wait out the resume window, for a resume
// elsewhere) and returns once every connection's goroutines have ended.
func (t *Transport) Serve(ctx context.Context, ln net.Listener, b *broker.Broker) error {
	t.log = b.Logger().With("transport", Name)
	t.mu.Lock()
	t.listening = ln.Addr()
	t.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
	})
	defer stop()
	t.log.Info("ndjson listening", "addr", ln.Addr().String())
	var err error
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			break
		}
		t.mu.Lock()
		if ctx.Err() != nil {
			t.mu.Unlock()
			nc.Close()
			break
		}
		t.conns[nc] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(ctx, nc, b)
	}
	t.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// serve runs one connection: the join, then a reader (this goroutine) and a
// writer.
func (t *Transport) serve(ctx context.Context, nc net.Conn, b *broker.Broker) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, nc)
		t.mu.Unlock()
		nc.Close()
	}()
	defer func() {
		if p := recover(); p != nil {
			t.log.Error("ndjson connection panicked", "panic", p)
		}
	}()
	max := b.Options().MaxEnvelope
	r := bufio.NewReaderSize(nc, 4096)

	// The join: one line within the join timeout.
	_ = nc.SetReadDeadline(time.Now().Add(t.opts.JoinTimeout))
	line, err := readLine(r, max)
	if err != nil {
		t.refuse(nc, err)
		return
	}
	env, err := broker.Decode(line, max)
	if err != nil {
		t.refuse(nc, err)
		return
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		t.refuse(nc, err)
		return
	}
	joined, err := b.Join(ctx, req)
	if err != nil {
		if e := broker.AsError(err); e.Ref == "" {
			e.Ref = env.ID
			err = e
		}
		t.refuse(nc, err)
		return
	}
	sess := joined.Session
	// Attach before writing the welcome: from now on this connection is the
	// session's, and a newer one (a resume) supersedes it.
	att := sess.Attach()
	defer att.Detach()
	_ = nc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
	if _, err := nc.Write(append(joined.Welcome, '\n')); err != nil {
		return
	}

	readDone := make(chan struct{})
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		defer nc.Close() // the writer's end ends the reader too
		t.write(nc, att, joined.After, readDone)
	}()
	t.read(ctx, nc, r, sess, max)
	close(readDone)
	<-writeDone
}

// read hands every line the peer sends to the session until the connection
// ends or the session does.
func (t *Transport) read(ctx context.Context, nc net.Conn, r *bufio.Reader, sess *broker.Session, max int) {
	for {
		_ = nc.SetReadDeadline(time.Now().Add(t.opts.IdleTimeout))
		line, err := readLine(r, max)
		if errors.Is(err, errTooLong) {
			// Refused like any bad envelope, and the line is skipped.
			sess.Refuse("", broker.Errorf(broker.CodeTooLarge, "envelope over %d bytes", max))
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				sess.Logger().Debug("ndjson read ended", "error", err)
			}
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// A refusal (bad JSON, rate limit, …) reaches the peer as an error
		// line through the writer; only the session's end stops reading.
		// ErrSessionMoved (a resume took the session to another node) is an
		// ErrSessionClosed too: this connection is stale, and the peer is
		// already elsewhere.
		if err := sess.HandleRaw(ctx, line); errors.Is(err, broker.ErrSessionClosed) {
			return
		}
	}
}

// write writes the session's frames in order until the session ends, a
// newer connection takes the session over, the peer stops reading, or the
// reader ends.
func (t *Transport) write(nc net.Conn, att *broker.Attachment, after uint64, readDone <-chan struct{}) {
	w := bufio.NewWriterSize(nc, 32<<10)
	for {
		frames, last, wait, err := att.Pending(after)
		var pe *broker.Error
		switch {
		case errors.Is(err, broker.ErrSuperseded), errors.Is(err, broker.ErrSessionClosed):
			return // superseded by a resume, or ended with everything written
		case errors.As(err, &pe):
			// The peer asked to resume from further back than the mailbox
			// keeps (session-expired): say so, and end.
			_ = nc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
			_, _ = nc.Write(append(broker.ErrorFrame(pe), '\n'))
			return
		case err != nil:
			// The mailbox is in a store that cannot be reached: try again.
			select {
			case <-time.After(retryTake):
				continue
			case <-readDone:
				return
			}
		}
		if len(frames) > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
			for _, f := range frames {
				w.Write(f)
				w.WriteByte('\n')
			}
			if err := w.Flush(); err != nil {
				return // a slow or gone peer: the session waits for a resume
			}
			after = last
			continue
		}
		select {
		case <-wait:
		case <-att.Gone():
		case <-readDone:
			return
		}
	}
}

// refuse writes err as an error line to a connection that has not joined.
func (t *Transport) refuse(nc net.Conn, err error) {
	if errors.Is(err, errTooLong) {
		err = broker.Errorf(broker.CodeTooLarge, "join line too long")
	} else if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		err = broker.Errorf(broker.CodeBadRequest, "no join within %v", t.opts.JoinTimeout)
	}
	e := broker.AsError(err)
	t.log.Info("ndjson join refused", "code", e.Code, "error", err)
	_ = nc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
	_, _ = nc.Write(append(broker.ErrorFrame(e), '\n'))
}

var errTooLong = errors.New("ndjson: line too long")

// readLine reads one line of at most max bytes, without its end. A longer
// line is read to its end and refused with errTooLong.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 { // the envelope, \r and \n
			if err == nil {
				return nil, errTooLong
			}
			if err = skipLine(r); err != nil {
				return nil, err
			}
			return nil, errTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			return bytes.TrimRight(line, "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("ndjson: connection ended inside a line: %w", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
	}
}

// skipLine discards the rest of a line.
func skipLine(r *bufio.Reader) error {
	for {
		_, err := r.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}
