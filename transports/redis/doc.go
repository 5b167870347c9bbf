// Package redis is Switchboard's Redis pub/sub transport and the cluster's
// backplane and session store on Redis. All of them take any go-redis
// UniversalClient: one server, Sentinel, or Redis Cluster.
//
// # The transport
//
// [Transport] is for peers that reach Redis but not the broker's HTTP port.
// The wire it speaks (channels P:in, P:reply:<name> and P:peer:<room>:<peer>
// under prefix P, the session secret in every later envelope, acks as flow
// control, the idle timeout, what a peer does after a loss, and the ACLs to
// run it with) is specified in docs/protocol.md, section 3, "Redis pub/sub",
// and section 6, "Redis pub/sub"; this comment says only how the package
// keeps it.
//
// The broker publishes nothing that no subscriber hears: while PUBLISH
// answers 0 (nobody listening yet, or a subscription being restored after an
// outage) or fails, it tries the same envelope again, with backoff. An
// envelope that cannot be answered is logged and counted in
// switchboard_redis_dropped_total. Several nodes of a cluster may all run the
// transport on one prefix: they all read P:in, a join is answered by the node
// that first sets P:join:<digest of the join> (a resume by the node that
// holds the session), and each session's envelopes are handled by its node.
//
// # The backplane and the store
//
// [Backplane] implements broker.Backplane on Redis, so that broker nodes
// sharing one Redis share rooms: presence in a hash per room with atomic
// claims, node liveness with expiring keys (a dead node's peers are seen to
// leave), and events over pub/sub. Its doc comment gives the design.
// [Store] implements broker.Store: each session and its mailbox, a hash and
// a stream under one hash tag, so that any node can deliver to a session and
// a session can resume on any node (docs/protocol.md, section 6, "Cluster
// mode"). Both batch: the store's pushes, acks and marks that wait at the
// same moment share one script call per hash slot, and the backplane's
// wakes (the word a node sends when it stored a message for another node's
// session) travel together in a compact form of their own (wire.go), which
// nodes before it cannot read: a cluster's nodes are upgraded together. The
// transport and the backplane report whether Redis is reachable through
// Ready, for /readyz.
//
// Keys and channels, under prefix P: P:in, P:peer:<room>:<peer> and the
// peers' reply channels (transport); P:join:<digest> (join arbitration);
// P:room:<room>, P:node:<node>, P:nodes, P:node-rooms:<node>,
// P:reaped:<node>, P:events, P:events:<node> and P:confirm:<node>
// (backplane); P:sess:{<id>} and P:mbox:{<id>} (store).
//
// Package redistest starts a real redis-server for tests and dials the
// transport at the wire level for the conformance kit, broker/brokertest.
package redis
