package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the broker's Prometheus collectors.
type metrics struct {
	sessions  *prometheus.GaugeVec
	relayedV  *prometheus.CounterVec
	refusedV  *prometheus.CounterVec
	latency   prometheus.Histogram
	depth     atomic.Int64
	relayedBy sync.Map // type → prometheus.Counter, to skip label lookups per message
}

func newMetrics(reg prometheus.Registerer, b *Broker) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_sessions", Help: "Live sessions on this node, by transport.",
		}, []string{"transport"}),
		relayedV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_envelopes_relayed_total", Help: "Envelopes relayed from peer to peer, by type.",
		}, []string{"type"}),
		refusedV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_envelopes_refused_total", Help: "Envelopes refused, by type and error code.",
		}, []string{"type", "code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_delivery_latency_seconds",
			Help:    "Time from a message entering a mailbox to its being handed to the receiver's connection.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}),
	}
	if reg != nil {
		depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_mailbox_depth", Help: "Messages waiting in this node's mailboxes, not yet acknowledged.",
		}, func() float64 { return float64(m.depth.Load()) })
		rooms := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_rooms", Help: "Rooms with a peer or a held message on this node.",
		}, func() float64 { b.mu.RLock(); defer b.mu.RUnlock(); return float64(len(b.rooms)) })
		held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_held_messages", Help: "Messages this node holds for peers not in their room (the offline hold).",
		}, func() float64 { return float64(b.heldMsgs.Load()) })
		reg.MustRegister(m.sessions, m.relayedV, m.refusedV, m.latency, depth, rooms, held)
	}
	return m
}

func (m *metrics) sessionOpened(transport string) { m.sessions.WithLabelValues(transport).Inc() }
func (m *metrics) sessionClosed(transport string) { m.sessions.WithLabelValues(transport).Dec() }
func (m *metrics) queued(n int)                   { m.depth.Add(int64(n)) }
func (m *metrics) refused(typ string, c Code)     { m.refusedV.WithLabelValues(typ, string(c)).Inc() }
func (m *metrics) delivered(d time.Duration) {
	m.latency.Observe(d.Seconds())
}

func (m *metrics) relayed(typ string) {
	if c, ok := m.relayedBy.Load(typ); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.relayedV.WithLabelValues(typ)
	m.relayedBy.Store(typ, c)
	c.Inc()
}
