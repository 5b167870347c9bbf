// Package barerelay is a minimal WebSocket relay, the "no broker at all"
// reference point for Switchboard's benchmarks.
//
// A client connects with ?id=X on any path. Every text frame it sends must be
// a JSON object with a "to" field naming another connected client; the relay
// forwards the frame, byte for byte, to that client. There are no rooms,
// sessions, sequence numbers, acknowledgements, tokens or keep-alives: frames
// for an unknown client, and frames that are not JSON objects with a "to",
// are dropped. A second connection with an id already in use replaces the
// first.
//
// The relay is deliberately naive: gorilla/websocket with default buffers, a
// reader and a writer goroutine per connection and a bounded send queue per
// connection on which a sender's reader blocks (back-pressure, not drops). It
// is what a signaling server costs when it does nothing but move frames, the
// floor against which a broker's overhead is measured. The load generator in
// package loadgen speaks it as its "raw" protocol.
package barerelay
