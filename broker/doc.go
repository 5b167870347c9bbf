// Package broker is the core of Switchboard, a WebRTC signaling broker.
//
// It implements the Switchboard signaling protocol, version 1 (docs/protocol.md):
// the envelope and its validation, rooms, sessions with their seq-numbered,
// bounded mailboxes (acknowledgement, resume and the offline hold), routing,
// tokens and limits. It knows nothing of any wire: transports (WebSocket,
// long-polling, Redis, email, or a custom adapter) decode envelopes from their
// peers, hand them to [Session.Handle], attach their connection with
// [Session.Attach], and write out what [Attachment.Pending] gives them.
//
// A transport implements [Transport] and registers a factory with [Register],
// the way database/sql drivers do. Several broker nodes share rooms through a
// [Backplane]; [MemoryBackplane] is the in-process one.
//
// The package imports no transport and no network library. Its files are
// named for the steps of an envelope's path through it, which
// docs/architecture.md follows file by file.
package broker
