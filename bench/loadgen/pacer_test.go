package loadgen

import (
	"testing"
	"time"
)

func TestPacerSchedule(t *testing.T) {
	for _, c := range []struct {
		pairs    int
		interval time.Duration
	}{{1, time.Millisecond}, {3, 30 * time.Microsecond}, {100, 50 * time.Millisecond}, {7, time.Microsecond}} {
		p := &pacer{pairs: make([]*pair, c.pairs), interval: c.interval}
		last := int64(-1)
		next := make([]int64, c.pairs) // each pair's next number
		for j := range int64(10 * c.pairs) {
			due, k, n := p.due(j)
			if due < last {
				t.Fatalf("%d pairs every %v: message %d due at %d ns, before the one before it (%d)", c.pairs, c.interval, j, due, last)
			}
			if n != next[k] {
				t.Fatalf("%d pairs: message %d is pair %d's number %d, want %d", c.pairs, j, k, n, next[k])
			}
			if want := n*c.interval.Nanoseconds() + c.interval.Nanoseconds()*int64(k)/int64(c.pairs); due != want {
				t.Fatalf("%d pairs: pair %d's message %d due at %d ns, want %d", c.pairs, k, n, due, want)
			}
			last, next[k] = due, n+1
		}
	}
}

func TestSleeper(t *testing.T) {
	s := newSleeper()
	for _, d := range []time.Duration{-time.Millisecond, 0, 100 * time.Microsecond, 2 * time.Millisecond} {
		due := time.Now().Add(d)
		s.sleepUntil(due)
		if late := time.Since(due); late < 0 || late > time.Second {
			t.Errorf("sleepUntil(now%+v) returned %v after the time", d, late)
		}
	}
}
