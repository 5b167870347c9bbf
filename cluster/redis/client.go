package redis

import "github.com/switchboard-rtc/switchboard/internal/redisclient"

// DefaultURL is the Redis server used when neither URL nor Addrs is set.
const DefaultURL = redisclient.DefaultURL

// DefaultPrefix starts every key and channel name.
const DefaultPrefix = redisclient.DefaultPrefix

// ClientOptions names a Redis deployment: one server (URL), a Redis Cluster
// (Addrs), or a primary found through Sentinels (Addrs and MasterName). The
// Redis transport (package transports/redis) embeds the same options.
type ClientOptions = redisclient.Options

// keys builds the backplane's key and channel names under one prefix.
type keys struct{ prefix string }

func newKeys(prefix string) keys { return keys{redisclient.Prefix(prefix)} }

// room is the hash of a room's members: peer id → JSON broker.Member.
func (k keys) room(room string) string { return k.prefix + ":room:" + room }

// node is the key a live node keeps refreshing; it expires when the node dies.
func (k keys) node(node string) string { return k.prefix + ":node:" + node }

// nodes is the hash of every node that has beaten: id → unix milliseconds
// of its last beat.
func (k keys) nodes() string { return k.prefix + ":nodes" }

// nodeRooms is the set of rooms a node has (or had) members in.
func (k keys) nodeRooms(node string) string { return k.prefix + ":node-rooms:" + node }

// reaped is the set of "room/peer" of a node's members that another node
// removed, believing the node dead.
func (k keys) reaped(node string) string { return k.prefix + ":reaped:" + node }

// events is the channel of events for every node.
func (k keys) events() string { return k.prefix + ":events" }

// nodeEvents is the channel of events for one node (relays to its peers).
func (k keys) nodeEvents(node string) string { return k.prefix + ":events:" + node }

// confirms is the channel on which a node hears that its relays arrived.
func (k keys) confirms(node string) string { return k.prefix + ":confirm:" + node }
