package websocket

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// poller tells when idle connections' sockets have bytes, so that no
// goroutine need wait on each (Linux epoll). Each report starts a reading
// goroutine (conn.readable) unless one runs, which then reads again.
//
// The epoll instance is itself waited on through Go's own network poller,
// so the poller's goroutine parks like any other instead of holding a
// thread in epoll_wait.
type poller struct {
	f   *os.File
	fd  int
	raw syscall.RawConn
	log *slog.Logger

	mu    sync.Mutex
	conns registry // by pollID-1
}

// newPoller starts a poller.
func newPoller(log *slog.Logger) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &poller{f: f, fd: fd, raw: raw, log: log}
	go p.run()
	return p, nil
}

// run starts a reading goroutine for each connection reported readable,
// until the poller is closed.
func (p *poller) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.raw.Read(func(fd uintptr) bool {
			for {
				n, werr = syscall.EpollWait(int(fd), events, 0)
				if werr != syscall.EINTR {
					return n > 0 || werr != nil
				}
			}
		})
		if err != nil {
			return // closed
		}
		if werr != nil {
			p.log.Error("websocket: epoll_wait failed; readiness polling stops", "error", werr)
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			// An index freed and reused may still be reported for the
			// connection that had it: a read then finds nothing.
			if c := p.conns.get(int(uint32(ev.Fd)) - 1); c != nil {
				c.wake(p)
			}
		}
		p.mu.Unlock()
	}
}

// register watches c's socket. The registration is edge-triggered: every
// arrival of bytes is reported once, and conn.wake sorts out whether a
// goroutine is reading already.
func (p *poller) register(c *conn) error {
	p.mu.Lock()
	if c.ended.Load() {
		p.mu.Unlock()
		return nil
	}
	id := uint32(p.conns.add(c)) + 1
	c.pollID = id
	p.mu.Unlock()
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | (syscall.EPOLLET & 0xFFFFFFFF),
		Fd:     int32(id),
	}
	var cerr error
	if err := c.raw.Control(func(fd uintptr) { cerr = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil {
		return nil // closed meanwhile
	}
	if cerr != nil && c.ended.Load() {
		return nil
	}
	return cerr
}

// remove forgets c, which is closing: closing its socket takes it out of
// the epoll set.
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	p.conns.remove(int(c.pollID)-1, c)
	p.mu.Unlock()
}

// close stops the poller.
func (p *poller) close() { p.f.Close() }

// readNow reads what the socket holds without waiting. It returns
// errWouldBlock, with the bytes read if any, once the socket has no more:
// when it held nothing, or less than p had room for.
func (c *conn) readNow(p []byte) (int, error) {
	var n int
	var errno error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			n, errno = syscall.Read(int(fd), p)
			if errno != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EAGAIN:
		return 0, errWouldBlock
	case errno != nil:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	case n < len(p):
		// Drained, most likely: this saves a read that would find nothing.
		// Bytes that came after it are reported by the poller.
		return n, errWouldBlock
	}
	return n, nil
}
