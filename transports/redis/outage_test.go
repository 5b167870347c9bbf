package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// logBuffer is a log destination safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestOutageLogged: with Redis unreachable the transport says so at once,
// once (not at every attempt), does not claim to listen, and says when
// Redis is back and it listens.
func TestOutageLogged(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	proxy.Cut()
	var logs logBuffer
	b := broker.New(broker.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	defer b.Close(broker.ReasonKicked)
	tr, err := redis.New(redis.Options{ClientOptions: redis.ClientOptions{URL: "redis://" + proxy.Addr() + "/0"}, Prefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	defer func() { cancel(); <-done }()
	if !redistest.WaitFor(20*time.Second, func() bool { return tr.FailedAttempts() >= 3 }) {
		t.Fatalf("the subscription did not keep trying: %d attempts failed", tr.FailedAttempts())
	}
	if n := logs.count(`"msg":"redis unreachable; subscribing again with backoff"`); n != 1 {
		t.Fatalf("the first failure was logged %d times, want once:\n%s", n, logs.String())
	}
	if logs.count("listening") != 0 {
		t.Fatalf("listening logged while Redis was unreachable:\n%s", logs.String())
	}
	proxy.Heal()
	if !redistest.WaitFor(20*time.Second, func() bool { return tr.Ready() == nil && logs.count("listening") == 1 }) {
		t.Fatalf("not listening after Redis came back: %v\n%s", tr.Ready(), logs.String())
	}
	if logs.count(`"msg":"redis reachable again; subscribed"`) != 1 || logs.count(`"failed_attempts"`) != 1 {
		t.Fatalf("the recovery was not logged once, with the failed attempts:\n%s", logs.String())
	}
}

// TestJunkOnInputLogsSparingly: whoever can publish to Prefix:in cannot
// make the broker log a line per message: junk is counted, and logged at
// most once per interval.
func TestJunkOnInputLogsSparingly(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	logs := &logBuffer{}
	n := startNode(t, srv, broker.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}, redis.Options{})
	for i := range 500 {
		if err := client.Publish(context.Background(), n.prefix+":in", fmt.Sprintf(`{"type":"ping","session":"junk%d"}`, i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The input channel is read in order: once this join is answered, the
	// junk before it has been dealt with.
	brokertest.Join(t, redistest.Dial(client, n.prefix), "r", "a")
	if lines := strings.Count(logs.String(), "dropped"); lines > 2 {
		t.Fatalf("500 junk messages logged %d lines:\n%.2000s", lines, logs.String())
	}
}
