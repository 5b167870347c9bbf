// Package switchboard is the Go client of Switchboard, a WebRTC signaling
// broker. It speaks the Switchboard signaling protocol, version 1
// (docs/protocol.md), over WebSocket or HTTP long-polling, with the same model
// as the browser client: join a room as a peer, see the other peers come and
// go, and swap offers, answers, ICE candidates and application messages with
// them.
//
// A [Client] is made by [Dial] and lives until [Client.Close]. It keeps its
// session across broken connections: when the connection drops it reconnects
// with backoff and resumes the session (join with payload.resume), so that every
// message is delivered exactly once and in order. Envelopes sent while it is
// reconnecting wait in a queue and go out after the resume; every envelope
// carries an id, so that a retried envelope is dropped by the broker if the
// first copy got through.
//
// Errors that the broker sends are [*Error] values carrying the protocol's
// error code; match them with errors.As. A refused join is returned by Dial.
//
// The wire types [SessionDescription] and [ICECandidateInit] are shaped exactly
// like the browser's RTCSessionDescriptionInit and RTCIceCandidateInit, and
// convert field for field to pion/webrtc's types. Package webrtcpeer, beside
// this one, runs a WebRTC peer connection over a Client.
//
// The broker tells each peer which STUN and TURN servers to use, with TURN
// credentials minted for it: [Client.ICEServers] has the newest, which the
// Client refreshes by itself before they expire ([Client.RefreshICEServers]
// asks at once). They are shaped like the browser's RTCIceServer.
//
// Transports are registered by name with [RegisterTransport]; "websocket" and
// "longpoll" are built in.
package switchboard
