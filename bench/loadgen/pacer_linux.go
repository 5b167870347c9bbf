//go:build linux

package loadgen

import (
	"time"

	"golang.org/x/sys/unix"
)

// sleeper sleeps until a given moment with the kernel's precision:
// clock_nanosleep to an absolute time on CLOCK_MONOTONIC (the clock behind
// Go's monotonic readings), from a thread whose timer slack is cut from the
// default 50 µs to 1 ns. It belongs to the OS thread it was made on, which
// its caller has locked and does not give back.
type sleeper struct {
	ref     time.Time // a moment, with its monotonic reading
	refMono int64     // CLOCK_MONOTONIC in ns at, or just after, ref
	precise bool      // the clock could be read; else time.Sleep
}

// newSleeper sets the calling thread's timer slack and ties Go's clock to
// CLOCK_MONOTONIC.
func newSleeper() *sleeper {
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	s := &sleeper{ref: time.Now()}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		s.refMono, s.precise = ts.Nano(), true
	}
	return s
}

// sleepUntil returns at t or, by the time it takes to wake, just after.
func (s *sleeper) sleepUntil(t time.Time) {
	if !s.precise {
		time.Sleep(time.Until(t))
		return
	}
	ts := unix.NsecToTimespec(s.refMono + t.Sub(s.ref).Nanoseconds())
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
	}
}
