//go:build !linux

package websocket

import (
	"errors"
	"log/slog"
)

// poller is unavailable here: every connection keeps a reading goroutine.
type poller struct{}

var errNoPoller = errors.New("readiness polling is implemented on Linux only")

// newPoller returns no poller and no error: reading with a goroutine per
// connection is the way here, not a failure.
func newPoller(*slog.Logger) (*poller, error) { return nil, nil }

func (*poller) register(*conn) error { return errNoPoller }
func (*poller) remove(*conn)         {}
func (*poller) close()               {}

// readNow is never called without a poller.
func (c *conn) readNow([]byte) (int, error) { return 0, errNoPoller }
