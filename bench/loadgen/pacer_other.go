//go:build !linux

package loadgen

import "time"

// sleeper sleeps until a given moment. Elsewhere than on Linux it uses Go's
// timers, which may wake up to a millisecond late; the pacer's send lag
// shows by how much.
type sleeper struct{}

// newSleeper returns a sleeper.
func newSleeper() *sleeper { return &sleeper{} }

// sleepUntil returns at t or after.
func (s *sleeper) sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
