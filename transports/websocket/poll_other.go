//go:build !linux

package wstransport

import (
	"errors"
	"log/slog"
)

// poller is unavailable here: every connection keeps a reading goroutine.
type poller struct{}

func newPoller(*slog.Logger) (*poller, error) {
	return nil, errors.New("readiness polling is implemented on Linux only")
}

func (*poller) arm(*conn) error { return errors.New("no poller") }
func (*poller) remove(*conn)    {}
func (*poller) close()          {}
