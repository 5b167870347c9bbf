// Package wstransport is Switchboard's WebSocket transport
// (docs/protocol.md, section 3, "WebSocket"): GET /v1/ws, upgraded, one
// envelope per text frame, join first.
//
// Each connection has one reader goroutine (the HTTP handler's) and one
// writer goroutine that owns every write and deadline and pulls from the
// session's mailbox, so a peer that stops reading holds up nobody else: its
// mailbox fills until the broker ends the session as a slow consumer.
package wstransport
