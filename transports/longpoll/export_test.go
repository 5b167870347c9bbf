package longpoll

// ParkedPolls is how many polls wait parked, for tests.
func (t *Transport) ParkedPolls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.parked)
}
