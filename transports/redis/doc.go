// Package redis is Switchboard's Redis pub/sub transport. It takes any
// go-redis UniversalClient: one server, Sentinel, or Redis Cluster. The
// cluster's backplane and session store on Redis, which broker nodes use
// between themselves, are package cluster/redis.
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
// The transport reports whether Redis is reachable through Ready, for /readyz.
//
// Keys and channels, under prefix P: P:in, P:peer:<room>:<peer> and the
// peers' reply channels; P:join:<digest> (join arbitration). The cluster's
// keys under the same prefix are listed in package cluster/redis.
//
// Package redistest starts a real redis-server for tests and dials the
// transport at the wire level for the conformance kit, broker/brokertest.
package redis
