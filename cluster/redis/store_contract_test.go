package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestStoreContract runs the Store contract on the Redis store, against a
// real redis-server, each case under a key prefix of its own.
func TestStoreContract(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	var n atomic.Int64
	brokertest.RunStore(t, func(*testing.T) broker.Store {
		return redis.NewStore(client, fmt.Sprintf("contract%d", n.Add(1)))
	}, brokertest.StoreOptions{})
}
