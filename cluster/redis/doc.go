// Package redis is the plumbing of cluster mode on Redis: the backplane and
// the session store that broker nodes sharing one Redis use between
// themselves. Both take any go-redis UniversalClient: one server, Sentinel,
// or Redis Cluster. Peers that speak to the broker over Redis use a
// different package, the transport in transports/redis.
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
// backplane reports whether Redis is reachable through Ready, for /readyz.
//
// Keys and channels, under prefix P (the same prefix as the Redis
// transport's, when both run): P:room:<room>, P:node:<node>, P:nodes,
// P:node-rooms:<node>, P:reaped:<node>, P:events, P:events:<node> and
// P:confirm:<node> (backplane); P:sess:{<id>} and P:mbox:{<id>} (store).
//
// Package transports/redis/redistest starts a real redis-server for tests
// and makes a backplane on it (NewBackplane).
package redis
