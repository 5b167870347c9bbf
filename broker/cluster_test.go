package broker_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
)

func TestMemoryBackplaneCluster(t *testing.T) {
	brokertest.RunBackplane(t, func(*testing.T) broker.Backplane { return &broker.MemoryBackplane{} })
}

func TestMemoryBackplane(t *testing.T) {
	brokertest.RunBackplaneContract(t, func(*testing.T) broker.Backplane { return &broker.MemoryBackplane{} })
}

func TestMemoryStore(t *testing.T) {
	brokertest.RunStore(t, func(*testing.T) broker.Store { return &broker.MemoryStore{} },
		brokertest.StoreOptions{CountsBytes: true})
}
