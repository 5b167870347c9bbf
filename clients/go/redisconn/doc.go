// Package redisconn adds the Redis pub/sub transport to the Switchboard Go
// client (package switchboard, beside this one), for peers that reach the
// broker's Redis but not its HTTP port: back-end services, and devices on the
// broker's network.
//
// Importing the package, even blank, registers the transport under the name
// "redis":
//
//	import _ "github.com/switchboard-rtc/switchboard/clients/go/redisconn"
//
//	client, err := switchboard.Dial(ctx, "redis://127.0.0.1:6379/0",
//		switchboard.Options{Room: "demo", Transport: "redis"})
//
// The URL given to Dial is the Redis server's, not the broker's:
// redis://[user:password@]host:port[/db], or rediss:// for TLS. The key
// prefix is the broker's default, "switchboard", unless the URL's query
// names another, ?prefix=P, or the dialer was made with one
// ([NewDialFunc] and Config.Prefix, for a transport registered under a name
// of its own); the query's other options are go-redis's (redis.ParseURL).
// Options' NetDialContext opens the connections to Redis, and TLSConfig, if
// set, replaces the one a rediss:// URL implies.
//
// # The wire
//
// A connection speaks the Redis pub/sub transport of docs/protocol.md
// (section 3, "Redis pub/sub", and section 6, "Redis pub/sub"), which
// specifies the channels, the join's reply channel, the session field, acks
// and the ACLs a peer needs. What this package chooses where the protocol
// leaves room:
//
//   - Each connection has a Redis client of its own, and subscribes on one
//     pub/sub connection to a reply channel P:reply:<random hex> (and, when
//     the join names the peer, to its peer channel) before it publishes the
//     join.
//   - The envelopes of one Send go to P:in in one pipeline. A PUBLISH that
//     reaches no subscriber reached no broker: it is published again, with
//     backoff, for at most Options.WriteTimeout (the join: for the
//     handshake's time), after which the connection counts as broken. Those
//     after it in the pipeline follow it again; the broker drops the repeats
//     by their ids.
//   - A connection that has published nothing, or heard nothing, for the
//     keepalive interval (20 s) publishes a ping, so that the broker's idle
//     timeout (60 s) never ends a live peer; the pong is not returned by
//     Recv. Acknowledgements are the Client's, as on WebSocket.
//
// # Losses and resumes
//
// Pub/sub loses what is in flight when a connection or Redis dies, and
// go-redis would subscribe again on a new connection without telling. So a
// Conn never restores a subscription: when its pub/sub connection fails (a
// read error, or a Redis PING unanswered for 3 s after 3 s of silence), or
// when it has heard nothing from the broker for twice the keepalive interval
// and 10 s more, Recv fails and the Client dials a new Conn that joins with
// resume {session, last_seq}; the broker publishes everything after last_seq
// again, and the Client drops the seqs it already has. A seq that skips one
// makes the Client resume in the same way. What the Client sent without a
// confirming pong is sent again after the resume, and the broker drops the
// repeats by their ids.
//
// Whoever can read these channels reads the signaling, session secrets
// included: use a Redis that only trusted services reach, over TLS
// (rediss://), with the ACLs docs/protocol.md gives.
package redisconn
