// Package promreg registers the Prometheus collectors of Switchboard's
// transports with the broker's registerer, so that two transports of one
// kind in one process (or one made twice, as tests do) share their metrics
// instead of failing to register them.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or returns the collector of
// the same description already registered there. A registration that fails
// for another reason (a clashing description) leaves c unregistered: its
// counts are kept but not exported. It is safe for concurrent use.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
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
