// Package redis is Switchboard's Redis pub/sub transport
// (docs/protocol.md, section 3, "Redis pub/sub") and its cluster backplane
// on Redis (ARCHITECTURE.md, "Cluster mode"). Both take any go-redis
// UniversalClient: one server, Sentinel, or Redis Cluster.
//
// # The transport
//
// [Transport] is for peers that reach Redis but not the broker's HTTP port.
// With key prefix P (Options.Prefix, default "switchboard"):
//
//   - A peer subscribes to a reply channel of its own, P:reply:<a name of
//     its choosing>, then publishes a join to P:in whose payload carries,
//     beside what any join carries, "reply": "<that channel>". The broker
//     publishes the welcome, or the error that refuses the join, there. A
//     join naming any other channel is dropped unanswered: a publisher on
//     P:in cannot have the broker publish onto another peer's channel.
//   - After the join, the broker publishes everything for the peer to
//     P:peer:<room>:<peer>, in seq order. A peer that names its id in the join
//     subscribes to that channel before joining; one that lets the broker
//     choose subscribes when the welcome tells it. Until the welcome arrives,
//     the peer ignores the peer channel: when the join resumes a session, an
//     earlier connection's messages may still be going out there, and the
//     broker publishes everything after last_seq again right after the
//     welcome. The broker publishes
//     nothing that no subscriber hears: while PUBLISH answers 0 (nobody
//     listening yet, or a subscription being restored after an outage) or
//     fails, it tries the same envelope again, with backoff, so the peer gets
//     every envelope, in order, once it listens.
//   - Every envelope the peer publishes after the join carries its session
//     secret in a top-level "session" field. The broker finds the session by
//     it, drops the field and handles the rest like any transport's input.
//     The field (and a join's reply) does not count towards the envelope
//     size limit. An envelope without a session, or with one the broker does
//     not know, cannot be answered (there is no reply channel, and whatever
//     room and peer it names may be spoofed): it is logged and counted in
//     switchboard_redis_dropped_total, and nothing is published. A session
//     that ended, or that another transport now carries, is answered on its
//     peer channel with session-expired.
//   - Acknowledgements work as on WebSocket: {"type":"ack","payload":{"seq":N}},
//     at least every 32 messages or every second. Pub/sub has no
//     backpressure, so the acks are the transport's flow control: it
//     publishes at most half the mailbox bound ahead of the last ack (by
//     default 512 messages or 512 KiB, give or take one batch), and a peer
//     that stops acknowledging builds a backlog until the broker ends it as
//     a slow consumer, as on WebSocket.
//   - A peer that publishes nothing (not even a ping) for Options.IdleTimeout
//     (default 60 s) times out: its session ends and the others see peer-left
//     with reason timeout.
//   - A join with "resume": {"session", "last_seq"} resumes a session, over
//     Redis or from another transport, as on every transport; the new
//     connection supersedes the old one. A peer that fears it lost messages
//     (its own subscription broke) resumes with its last seq to have them
//     published again.
//   - PUBLISH's answer tells a peer whether a broker heard it: 0 means no
//     broker reads P:in (it is down or restarting); publish again.
//   - Pub/sub loses what is in flight when a connection or Redis dies, and
//     PUBLISH cannot tell: it counts a subscriber once the message is
//     queued for it. So a peer that sees a seq skip one, or whose
//     subscription was restored after a drop, resumes its session with the
//     last seq it has (a join with resume, as above), and drops envelopes
//     whose seq it already has.
//
// Several nodes of a cluster may all run the transport on one prefix: they
// all read P:in, so a join is answered by one node only (the first to set
// P:join:<digest of the join>; a resume by the node that holds the session),
// and each session's envelopes are handled by its node.
//
// Whoever can read these channels reads the signaling, session secrets
// included, and whoever can publish to P:in can try to join: run the
// transport on a Redis that only trusted services reach, with ACLs (a peer
// needs PUBLISH on P:in and SUBSCRIBE on its own channels) and TLS.
//
// # The backplane
//
// [Backplane] implements broker.Backplane on Redis, so that broker nodes
// sharing one Redis share rooms: presence in a hash per room with atomic
// claims, node liveness with expiring keys (a dead node's peers are seen to
// leave), and events over pub/sub. Its doc comment gives the design. Both
// types report whether Redis is reachable through Ready, for /readyz.
//
// Keys and channels, under prefix P: P:in, P:peer:<room>:<peer> and the
// peers' reply channels (transport); P:join:<digest> (join arbitration);
// P:room:<room>, P:node:<node>, P:nodes, P:node-rooms:<node>,
// P:reaped:<node>, P:events, P:events:<node> and P:confirm:<node>
// (backplane).
//
// Package redistest starts a real redis-server for tests and dials the
// transport at the wire level for the conformance kit, broker/brokertest.
package redis
