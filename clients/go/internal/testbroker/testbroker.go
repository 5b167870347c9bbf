// Package testbroker runs a real Switchboard broker in the process, with its
// WebSocket and long-poll transports, for the Go client's tests and examples.
// Its listener lets a test cut every live connection, as a network failure
// would.
package testbroker

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// Server is a broker listening on a loopback port. Close it when done.
type Server struct {
	// URL is the broker's base URL, such as http://127.0.0.1:41234.
	URL string
	// Broker is the broker itself.
	Broker *broker.Broker

	ln     *Listener
	http   *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Options configures the test broker. The zero value is the broker's
// defaults, with no logging.
type Options struct {
	// Broker configures the broker. Its Logger defaults to none.
	Broker broker.Options
	// LongPollIdle ends a long-poll session nobody polls for this long.
	// Default: the transport's (60 s).
	LongPollIdle time.Duration
	// Transports are run beside WebSocket and long-polling, such as the
	// Redis transport; they serve nothing over HTTP.
	Transports []broker.Transport
}

// Start runs a broker on 127.0.0.1 and a free port.
func Start(o Options) (*Server, error) {
	opts := o.Broker
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := broker.New(opts)
	ws := websocket.New(websocket.Options{})
	lp := longpoll.New(longpoll.Options{IdleTimeout: o.LongPollIdle})
	front := httpserver.New(b, httpserver.Options{}, ws, lp)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		URL:    "http://" + inner.Addr().String(),
		Broker: b,
		ln:     &Listener{Listener: inner, conns: map[net.Conn]struct{}{}},
		http:   &http.Server{Handler: front.Handler()},
		cancel: cancel,
	}
	for _, t := range append([]broker.Transport{ws, lp}, o.Transports...) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = t.Run(ctx, b)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(s.ln)
	}()
	return s, nil
}

// CutConnections closes every live TCP connection to the broker, as a
// network failure would, and returns how many it closed. The broker keeps
// listening.
func (s *Server) CutConnections() int { return s.ln.CutAll() }

// Close stops the broker and waits for its goroutines.
func (s *Server) Close() {
	s.cancel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.http.Shutdown(ctx)
	s.ln.CutAll()
	s.Broker.Close("shutdown")
	s.wg.Wait()
}

// Listener is a net.Listener that keeps the connections it accepted, so that
// they can be cut.
type Listener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Accept accepts a connection and tracks it until it is closed.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// CutAll closes every tracked connection and returns how many there were.
func (l *Listener) CutAll() int {
	l.mu.Lock()
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

type trackedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
