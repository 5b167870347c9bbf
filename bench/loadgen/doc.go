// Package loadgen is Switchboard's load generator, the library behind the
// `switchboard bench` subcommand.
//
// It drives a signaling server with many simulated peers and prints one JSON
// object of results. The server's wire protocol is hidden behind a Driver, so
// that the same workloads run against:
//
//   - switchboard: the Switchboard protocol, version 1 (docs/protocol.md), on
//     WebSocket (GET /v1/ws) or HTTP long-polling (/v1/sessions). The driver
//     acknowledges what it receives (every 16 messages, and half a second
//     after the last unacknowledged one), as the protocol asks of clients.
//   - peerjs: the PeerJS server (npm package "peer"), WebSocket at
//     /peerjs?key=…&id=…&token=…, with a HEARTBEAT every 5 s. It has no rooms:
//     peer ids are global, which the workloads respect by making every id
//     unique to the run. PeerJS relays only OFFER, ANSWER, CANDIDATE and
//     LEAVE, so application messages travel as CANDIDATE.
//   - raw: the bare relay of package barerelay, the "no broker at all"
//     reference.
//
// The workloads are:
//
//   - relay: pairs of peers, each in its own room; one side of each pair
//     sends messages of a given size to the other as fast as a window of
//     in-flight messages allows. Reports messages and bytes delivered per
//     second.
//   - latency: a fixed total rate of timestamped messages spread over the
//     pairs. Latency is measured from the time a message was due to be sent,
//     so a generator that falls behind shows as latency rather than hiding it
//     (no coordinated omission). Reports p50, p99, p99.9 and max. One pacer
//     goroutine sends every pair's messages in the order they are due, from
//     an OS thread of its own that sleeps in the kernel to the microsecond
//     (on Linux; Go's timers wake up to a millisecond late), and reports how
//     late it still began each send (send_lag_ms), the generator's own error.
//   - setup: WebRTC call setups: an SDP-sized offer and eight trickled ICE
//     candidates one way, the answer and eight candidates back. Reports
//     setups per second and the time one takes.
//   - idle: many idle sessions; reports the server's resident memory before
//     and after, per connection, and the rate at which they connected.
//   - connect: join, welcome and leave cycles per second from concurrent
//     workers.
//
// The load generator shares the machine with the server under test, so it
// is frugal, alike for every server: its own WebSocket client (ws.go) reads
// frames in place from a large buffer, writes masked frames with one system
// call per batch (the relay workload sends what its credits allow at once),
// and the drivers scan the JSON they receive without reflection or
// allocation, falling back to encoding/json for what the scan does not
// handle (jsonscan.go).
//
// Every workload except idle runs for a warm-up period first and counts only
// what happens in the measurement window after it. Use Main to run it as a
// command, or Run with Options from Go.
package loadgen
