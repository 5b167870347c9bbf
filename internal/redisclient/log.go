package redisclient

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// clientLogEvery is how often one kind of go-redis message (by its format)
// is logged: during an outage go-redis says the same thing many times a second.
const clientLogEvery = 30 * time.Second

// clientLog routes go-redis's own log lines (a dial that failed, a cluster
// slot reloaded) into slog, structured and throttled. go-redis has one
// logger for the process; the logger last given to RouteLog gets its lines.
type clientLog struct {
	log atomic.Pointer[slog.Logger]

	mu   sync.Mutex
	seen map[string]*clientLogKind // by format
}

type clientLogKind struct {
	last       time.Time
	suppressed int
}

var (
	clientLogger     = &clientLog{seen: make(map[string]*clientLogKind)}
	clientLoggerOnce sync.Once
)

// RouteLog makes go-redis log through log from now on.
func RouteLog(log *slog.Logger) {
	clientLogger.log.Store(log)
	clientLoggerOnce.Do(func() { goredis.SetLogger(clientLogger) })
}

// Printf implements go-redis's internal.Logging: the line is logged as a
// warning with the go-redis text in its "detail" field, unless a line of the
// same format was logged within clientLogEvery; the next one that is logged
// says how many were not.
func (l *clientLog) Printf(ctx context.Context, format string, v ...any) {
	log := l.log.Load()
	if log == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	k := l.seen[format]
	if k == nil {
		if len(l.seen) >= 256 { // formats are a fixed set; this only bounds the map
			clear(l.seen)
		}
		k = &clientLogKind{}
		l.seen[format] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < clientLogEvery {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()
	args := []any{"component", "go-redis", "detail", strings.TrimSpace(fmt.Sprintf(format, v...))}
	if suppressed > 0 {
		args = append(args, "like_it_since_last", suppressed)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	log.Log(ctx, slog.LevelWarn, "redis client", args...)
}
