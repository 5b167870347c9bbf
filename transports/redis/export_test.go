package redis

// FailedAttempts is how many attempts to subscribe to the input channel
// have failed in the current outage.
func (t *Transport) FailedAttempts() int {
	t.mu.Lock()
	sub := t.sub
	t.mu.Unlock()
	if sub == nil {
		return 0
	}
	return sub.FailedAttempts()
}
