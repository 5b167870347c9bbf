package email

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the transport's Prometheus collectors.
type metrics struct {
	in, out, retries, reconnects prometheus.Counter
	parse, drop                  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		in: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_email_mails_in_total", Help: "Mails received for the broker's address."}),
		out: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_email_mails_out_total", Help: "Mails sent to peers."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_email_send_retries_total", Help: "Submissions tried again after a failure."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_email_imap_reconnects_total", Help: "IMAP connections made again after a fault."}),
		parse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_parse_failures_total", Help: "Mails that were not of the format, by reason."}, []string{"reason"}),
		drop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_dropped_total", Help: "Mails dropped without an answer, by reason."}, []string{"reason"}),
	}
	if reg != nil {
		m.in = register(reg, m.in)
		m.out = register(reg, m.out)
		m.retries = register(reg, m.retries)
		m.reconnects = register(reg, m.reconnects)
		m.parse = register(reg, m.parse)
		m.drop = register(reg, m.drop)
	}
	return m
}

// register registers c with reg, or returns the collector already there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *metrics) mailIn()                   { m.in.Inc() }
func (m *metrics) mailOut()                  { m.out.Inc() }
func (m *metrics) sendRetry()                { m.retries.Inc() }
func (m *metrics) reconnect()                { m.reconnects.Inc() }
func (m *metrics) parseFailed(reason string) { m.parse.WithLabelValues(reason).Inc() }
func (m *metrics) dropped(reason string)     { m.drop.WithLabelValues(reason).Inc() }
