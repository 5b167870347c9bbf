package websocket_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
	"github.com/switchboard-rtc/switchboard/transports/websocket"
)

// TestConformanceWithStore runs the conformance kit on a broker whose
// mailboxes are in a Store, as in a cluster.
func TestConformanceWithStore(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			opts.Store = &broker.MemoryStore{}
			url, _ := start(t, opts, websocket.Options{})
			return transporttest.WebSocket(url)
		},
	})
}
