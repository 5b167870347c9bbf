package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis server used when neither URL nor Addrs is set.
const DefaultURL = "redis://localhost:6379/0"

// DefaultPrefix starts every key and channel name (docs/protocol.md's P).
const DefaultPrefix = "switchboard"

// ClientOptions names a Redis deployment: one server (URL), a Redis Cluster
// (Addrs), or a primary found through Sentinels (Addrs and MasterName). The
// transport and the backplane embed it, so that their configuration sections
// read alike.
type ClientOptions struct {
	// URL is one Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS. Default: DefaultURL, when Addrs is empty too.
	URL string `yaml:"url"`
	// Addrs are host:port seed addresses: the nodes of a Redis Cluster, or
	// the Sentinels when MasterName is set. Set either URL or Addrs.
	Addrs []string `yaml:"addrs"`
	// MasterName is the name of the primary that the Sentinels in Addrs watch.
	MasterName string `yaml:"master_name"`
	// Username and Password authenticate against Addrs (URL carries its own).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS connects to Addrs over TLS (URL says so with rediss://).
	TLS bool `yaml:"tls"`
}

// NewClient returns a go-redis client for the deployment o names: a
// *goredis.Client, *goredis.ClusterClient or failover client, as
// goredis.NewUniversalClient picks. It does not connect yet. The caller must
// Close it.
func (o ClientOptions) NewClient() (goredis.UniversalClient, error) {
	if o.URL != "" && len(o.Addrs) > 0 {
		return nil, errors.New("redis: set url or addrs, not both")
	}
	var u goredis.UniversalOptions
	if len(o.Addrs) > 0 {
		u = goredis.UniversalOptions{
			Addrs:      o.Addrs,
			MasterName: o.MasterName,
			Username:   o.Username,
			Password:   o.Password,
		}
		if o.TLS {
			u.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	} else {
		raw := o.URL
		if raw == "" {
			raw = DefaultURL
		}
		p, err := goredis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis: url: %w", err)
		}
		u = goredis.UniversalOptions{
			Addrs:      []string{p.Addr},
			MasterName: o.MasterName,
			Username:   p.Username,
			Password:   p.Password,
			DB:         p.DB,
			TLSConfig:  p.TLSConfig,
		}
	}
	return goredis.NewUniversalClient(&u), nil
}

// isCluster reports whether c talks to a Redis Cluster, where PUBLISH counts
// only the subscribers on the node it reached and so cannot confirm delivery.
func isCluster(c goredis.UniversalClient) bool {
	_, ok := c.(*goredis.ClusterClient)
	return ok
}

// keys builds the key and channel names under one prefix.
type keys struct{ prefix string }

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return keys{strings.TrimSuffix(prefix, ":")}
}

// in is the channel that peers publish their envelopes to.
func (k keys) in() string { return k.prefix + ":in" }

// peer is the channel the broker publishes a joined peer's envelopes to.
func (k keys) peer(room, peer string) string { return k.prefix + ":peer:" + room + ":" + peer }

// join is the key that nodes race for to decide which one answers a join.
func (k keys) join(digest string) string { return k.prefix + ":join:" + digest }

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

// replyPrefix starts every reply channel: P:reply:<the peer's own name>.
func (k keys) replyPrefix() string { return k.prefix + ":reply:" }

// replyOK reports whether a join may name ch as its reply channel: only
// P:reply:<name>, so that a publisher on P:in cannot have the broker publish
// onto another peer's channel or an application's (and an ACL can grant
// P:reply:* to peers).
func (k keys) replyOK(ch string) bool {
	return len(ch) > len(k.replyPrefix()) && len(ch) <= maxReply && strings.HasPrefix(ch, k.replyPrefix())
}
