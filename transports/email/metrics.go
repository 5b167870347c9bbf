package email

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/promreg"
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
		m.in = promreg.Register(reg, m.in)
		m.out = promreg.Register(reg, m.out)
		m.retries = promreg.Register(reg, m.retries)
		m.reconnects = promreg.Register(reg, m.reconnects)
		m.parse = promreg.Register(reg, m.parse)
		m.drop = promreg.Register(reg, m.drop)
	}
	return m
}

func (m *metrics) mailIn()                   { m.in.Inc() }
func (m *metrics) mailOut()                  { m.out.Inc() }
func (m *metrics) sendRetry()                { m.retries.Inc() }
func (m *metrics) reconnect()                { m.reconnects.Inc() }
func (m *metrics) parseFailed(reason string) { m.parse.WithLabelValues(reason).Inc() }
func (m *metrics) dropped(reason string)     { m.drop.WithLabelValues(reason).Inc() }
