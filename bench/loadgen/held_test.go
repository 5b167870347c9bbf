package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/bench/loadgen"
	"github.com/switchboard-rtc/switchboard/server"
)

// TestHeldSmoke runs compare.sh's held cases at a small scale against a
// real broker, served in this process as `switchboard serve` would: idle
// connections from several source addresses on each transport, memory read
// from /proc, then messages to random held peers, every one delivered.
func TestHeldSmoke(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("SWITCHBOARD_LIMITS_RATE", "-1")
	t.Setenv("SWITCHBOARD_LIMITS_JOIN_RATE", "-1")
	t.Setenv("SWITCHBOARD_LOG_LEVEL", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- server.Run(ctx, []string{"serve", "-listen", addr}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for server.Run(ctx, []string{"health", "-url", "http://" + addr}, &bytes.Buffer{}, &bytes.Buffer{}) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("broker not ready in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sources := 0
	if runtime.GOOS == "linux" { // every 127.0.0.x is loopback there
		sources = 4
	}
	for _, transport := range []string{loadgen.TransportWebSocket, loadgen.TransportLongPoll} {
		t.Run(transport, func(t *testing.T) {
			res, err := loadgen.Run(t.Context(), loadgen.Options{
				Workload:    loadgen.WorkloadIdle,
				URL:         "http://" + addr,
				Transport:   transport,
				Conns:       60,
				Concurrency: 8,
				SourceAddrs: sources,
				SampleRate:  200,
				Duration:    500 * time.Millisecond,
				Warmup:      100 * time.Millisecond,
				ServerPID:   os.Getpid(),
			})
			if err != nil {
				t.Fatal(err)
			}
			line, _ := json.Marshal(res)
			t.Logf("%s", line)
			if res.Errors != 0 || res.Connected != 60 || res.Dropped != 0 {
				t.Errorf("connected %d of 60, %d dropped, errors %v (first: %s)", res.Connected, res.Dropped, res.ErrorKinds, res.FirstError)
			}
			if res.RSSSource != "proc" || res.RSSAfter <= 0 {
				t.Errorf("memory read %d from %q (%s)", res.RSSAfter, res.RSSSource, res.RSSError)
			}
			d := res.Delivery
			if d == nil || d.Sent == 0 || d.Latency.Count != d.Sent {
				t.Errorf("delivery sample %+v", d)
			}
		})
	}
}
