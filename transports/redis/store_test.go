package redis_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestConformanceWithRedisStore runs the conformance kit over the Redis
// transport on a broker whose mailboxes are in Redis too, as in a cluster.
func TestConformanceWithRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			prefix := newPrefix()
			opts.Store = clusterredis.NewStore(client, prefix+"store")
			n := startNode(t, srv, opts, redis.Options{Prefix: prefix, IdleTimeout: opts.ResumeWindow})
			if opts.ResumeWindow > 0 {
				return redistest.DialWith(client, n.prefix, redistest.Options{KeepAlive: opts.ResumeWindow / 4})
			}
			return redistest.Dial(client, n.prefix)
		},
	})
}
