package broker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refusalLogEvery is how often one session's refusals reach the log at
// info level (error for internal ones); the rest are counted in metrics,
// summed up in the next line that is logged, and logged at debug level.
const refusalLogEvery = 10 * time.Second

// LogLimiter bounds what a client can make the broker log: it lets one line
// through per interval and counts the others, which the next line reports
// as "suppressed". The zero value lets one line through every 10 s. It is
// safe for concurrent use.
type LogLimiter struct {
	// Every is the interval. Default: 10 s.
	Every time.Duration

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// Log logs msg with args at level if the interval allows it, with the count
// of lines held back since the last one; else it logs at debug level.
func (l *LogLimiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	l.mu.Lock()
	ok, n := throttle(&l.next, &l.suppressed, l.Every, time.Now())
	l.mu.Unlock()
	logThrottled(log, ok, n, level, msg, args...)
}

// throttle reports whether a line may be logged at now, given when the next
// may be and how many were held back; it updates both.
func throttle(next *time.Time, suppressed *int, every time.Duration, now time.Time) (ok bool, held int) {
	if every <= 0 {
		every = refusalLogEvery
	}
	if now.Before(*next) {
		*suppressed++
		return false, 0
	}
	held = *suppressed
	*next, *suppressed = now.Add(every), 0
	return true, held
}

func logThrottled(log *slog.Logger, ok bool, held int, level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	switch {
	case ok && held > 0:
		log.Log(ctx, level, msg, append(args, "suppressed", held)...)
	case ok:
		log.Log(ctx, level, msg, args...)
	case log.Enabled(ctx, slog.LevelDebug):
		log.Log(ctx, slog.LevelDebug, msg, args...)
	}
}
