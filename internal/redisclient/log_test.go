package redisclient

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestClientLogRouted: go-redis's own lines reach slog, structured, and a
// line repeated many times a second is logged once.
func TestClientLogRouted(t *testing.T) {
	var logs bytes.Buffer
	RouteLog(slog.New(slog.NewJSONHandler(&logs, nil)))
	for i := 0; i < 50; i++ {
		clientLogger.Printf(context.Background(), "redis: %s:%d: failed to dial: %v", "pool.go", 42, "connection refused")
	}
	clientLogger.Printf(context.Background(), "sentinel: new master=%q", "m")
	if n := strings.Count(logs.String(), `"msg":"redis client"`); n != 2 {
		t.Fatalf("%d lines, want 2:\n%s", n, logs.String())
	}
	if strings.Count(logs.String(), `"component":"go-redis","detail":"redis: pool.go:42: failed to dial: connection refused"`) != 1 {
		t.Fatalf("the dial failure is not there as a structured line:\n%s", logs.String())
	}
}
