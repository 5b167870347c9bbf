// Package websocket is Switchboard's WebSocket transport
// (docs/protocol.md, section 3, "WebSocket"): GET /v1/ws, upgraded, one
// envelope per text frame, join first.
//
// gorilla/websocket performs the opening handshake; the frames after it are
// read and written by this package (frame.go, conn.go), so that an idle
// connection costs as little as possible: on Linux it holds no goroutine
// and no buffer. A readiness poller (epoll, waited on through Go's own
// network poller) starts a goroutine when a socket has bytes; that goroutine
// reads them into a pooled buffer, handles every whole frame in place and
// ends. Writes come from a goroutine that runs only while the session has
// frames pending, several frames to a system call, so a peer that stops
// reading holds up nobody else: its mailbox fills until the broker ends the
// session as a slow consumer. Elsewhere than Linux each connection keeps
// one reading goroutine.
package websocket
