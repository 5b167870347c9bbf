package email

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestConformanceWithRedisStore runs the conformance kit over email on a
// broker whose mailboxes are in Redis, as in a cluster.
func TestConformanceWithRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	var n atomic.Int64
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			opts.Store = clusterredis.NewStore(client, fmt.Sprintf("mailconf%d", n.Add(1)))
			r := newRig(t, Options{}, opts)
			h := &mailHarness{srv: r.tr.MailServer(), smtp: r.smtp}
			return h.dial
		},
		Skip: map[string]string{
			"ResumeTooLate": "as in TestConformance",
		},
	})
}
