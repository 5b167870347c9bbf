// Package webrtcpeer runs a WebRTC peer connection (pion/webrtc v4) between
// two peers of a Switchboard room, with the Go signaling client of package
// switchboard carrying the offers, answers and ICE candidates.
//
// A Peer follows the W3C "perfect negotiation" pattern
// (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either end
// may start or renegotiate at any time; when both send an offer at once (glare)
// the polite end rolls its own back and answers, and the impolite end ignores
// the polite one's offer. By default the peer whose id sorts first is polite,
// so two ends agree without talking about it.
//
// pion/webrtc cannot roll back a local offer (pion/webrtc issue 2133), so the
// polite end gets to the same place another way: on a connection that has
// been negotiated before, it applies the other end's current description
// again as the answer to its own offer, which leaves the connection as it was;
// before the first negotiation completed, it replaces its peer connection with
// a fresh one holding the same data channels. Either way it then answers the
// other end's offer, and asks again for any ICE restart its own offer carried.
//
// A failed ICE connection is restarted with an offer that restarts ICE: at
// once by the impolite end, and by the polite end only if the impolite one has
// not done so within a few seconds, so that the two seldom collide.
//
// Candidates are trickled as candidate envelopes, a null payload marking the
// end of them. For slow signaling, such as email, Options.GatherAll waits for
// ICE gathering to complete and sends one offer or answer that holds every
// candidate, and no candidate envelopes.
//
// A Peer has one data channel (Options.DataChannel): the end that calls
// Peer.Call creates it, and the other end receives it. Events (descriptions and
// candidates sent and received, ICE and connection states, the data channel
// opening, messages) reach Options.OnEvent, in order.
//
// Each peer connection is made with the STUN and TURN servers of
// Options.Configuration or, when it names none, with those the broker handed
// the signaling client (ICEServerSource, which *switchboard.Client is), with
// their newest credentials.
//
// One signaling client may carry calls with several peers: its owner reads
// the envelopes and hands each signal to the Peer of its sender with
// Peer.HandleSignal.
package webrtcpeer
