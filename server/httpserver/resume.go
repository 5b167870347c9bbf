package httpserver

import (
	"net"
	"sync"
	"sync/atomic"
)

// ConnResumer is implemented by a transport that hijacks connections and
// hands them back, to be served again: the long-polling transport parks a
// GET that waits long with nothing to deliver, holding its connection
// without net/http's goroutines and buffers, and returns it once answered.
// New gives it the server's resume function, which serves c's next
// requests as a new connection's and reports false when it cannot (the
// server is not serving, or is shutting down): the caller then closes c.
type ConnResumer interface {
	ResumeConnsWith(resume func(c net.Conn) bool)
}

// resumed is a listener whose connections are the ones transports hand
// back; the server serves it beside the real one.
type resumed struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	close   sync.Once
	start   sync.Once   // Serve starts serving it
	serving atomic.Bool // set once served
}

func newResumed() *resumed {
	return &resumed{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *resumed) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener; http.Server.Shutdown calls it.
func (l *resumed) Close() error {
	l.close.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener: the real listener's address.
func (l *resumed) Addr() net.Addr { return l.addr }

// resume hands c to the server, reporting false when it is not serving.
func (l *resumed) resume(c net.Conn) bool {
	if !l.serving.Load() {
		return false
	}
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}
