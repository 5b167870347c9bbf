package redis

import (
	"strings"

	"github.com/switchboard-rtc/switchboard/internal/redisclient"
)

// DefaultURL is the Redis server used when neither URL nor Addrs is set.
const DefaultURL = redisclient.DefaultURL

// DefaultPrefix starts every key and channel name (docs/protocol.md's P).
const DefaultPrefix = redisclient.DefaultPrefix

// ClientOptions names a Redis deployment: one server (URL), a Redis Cluster
// (Addrs), or a primary found through Sentinels (Addrs and MasterName). The
// cluster's backplane (package cluster/redis) embeds the same options.
type ClientOptions = redisclient.Options

// keys builds the transport's key and channel names under one prefix.
type keys struct{ prefix string }

func newKeys(prefix string) keys { return keys{redisclient.Prefix(prefix)} }

// in is the channel that peers publish their envelopes to.
func (k keys) in() string { return k.prefix + ":in" }

// peer is the channel the broker publishes a joined peer's envelopes to.
func (k keys) peer(room, peer string) string { return k.prefix + ":peer:" + room + ":" + peer }

// join is the key that nodes race for to decide which one answers a join.
func (k keys) join(digest string) string { return k.prefix + ":join:" + digest }

// replyPrefix starts every reply channel: P:reply:<the peer's own name>.
func (k keys) replyPrefix() string { return k.prefix + ":reply:" }

// replyOK reports whether a join may name ch as its reply channel: only
// P:reply:<name>, so that a publisher on P:in cannot have the broker publish
// onto another peer's channel or an application's (and an ACL can grant
// P:reply:* to peers).
func (k keys) replyOK(ch string) bool {
	return len(ch) > len(k.replyPrefix()) && len(ch) <= maxReply && strings.HasPrefix(ch, k.replyPrefix())
}
