package websocket

// ClientFrame builds a masked client frame for the package's external tests.
var ClientFrame = clientFrame

// WithoutPoller makes t read every connection with a goroutine of its own,
// as where there is no readiness poller.
func WithoutPoller(t *Transport) *Transport {
	t.noPoll = true
	return t
}
