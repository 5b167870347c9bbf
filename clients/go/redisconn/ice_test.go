package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// TestICEServersOverRedis: a peer on the Redis transport gets its STUN/TURN
// servers in the welcome, and fresh ones when it asks, like any peer.
func TestICEServersOverRedis(t *testing.T) {
	n := start(t, setup{broker: broker.Options{ICE: broker.ICE{
		TURNURLs: []string{"turn:127.0.0.1:3478"}, TURNSecret: []byte("redis-turn-secret"), TURNTTL: time.Hour,
	}}})
	c := dial(t, n.RedisURL, "redis", "ice", "svc")
	ice := c.ICEServers()
	if len(ice) != 1 || !strings.HasSuffix(ice[0].Username, ":svc") || ice[0].Credential == "" {
		t.Fatalf("ICEServers() = %+v", ice)
	}
	if left := time.Until(c.ICEExpires()); left < 59*time.Minute || left > time.Hour {
		t.Fatalf("credentials expire in %v", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh, err := c.RefreshICEServers(ctx)
	if err != nil || len(fresh) != 1 || !strings.HasSuffix(fresh[0].Username, ":svc") {
		t.Fatalf("RefreshICEServers = %+v, %v", fresh, err)
	}
}
