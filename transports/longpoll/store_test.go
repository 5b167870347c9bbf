package longpoll_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
)

// TestConformanceWithRedisStore runs the conformance kit over long-poll on
// a broker whose mailboxes are in Redis, as in a cluster.
func TestConformanceWithRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	var n atomic.Int64
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			opts.Store = clusterredis.NewStore(client, fmt.Sprintf("lpconf%d", n.Add(1)))
			url, _ := start(t, opts)
			return transporttest.LongPoll(url)
		},
	})
}
