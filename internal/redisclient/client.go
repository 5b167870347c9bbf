package redisclient

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

// Options names a Redis deployment: one server (URL), a Redis Cluster
// (Addrs), or a primary found through Sentinels (Addrs and MasterName). The
// Redis transport and the cluster's backplane embed it (as their
// ClientOptions), so that their configuration sections read alike.
type Options struct {
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
func (o Options) NewClient() (goredis.UniversalClient, error) {
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

// IsCluster reports whether c talks to a Redis Cluster, where PUBLISH counts
// only the subscribers on the node it reached and so cannot confirm delivery.
func IsCluster(c goredis.UniversalClient) bool {
	_, ok := c.(*goredis.ClusterClient)
	return ok
}

// Prefix returns the prefix that key and channel names start with: prefix
// without a trailing colon, or DefaultPrefix when it is empty.
func Prefix(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return strings.TrimSuffix(prefix, ":")
}
