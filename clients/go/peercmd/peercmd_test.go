package peercmd_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/clients/go/peercmd"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) has(line string) bool {
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.HasPrefix(l, line) {
			return true
		}
	}
	return false
}

type run struct {
	out  syncBuffer
	err  error
	done chan struct{}
}

func start(ctx context.Context, args ...string) *run {
	r := &run{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = peercmd.Main(ctx, args, &r.out)
	}()
	return r
}

func (r *run) wait(t *testing.T, name string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit; printed:\n%s", name, r.out.String())
	}
	if r.err != nil {
		t.Fatalf("%s: %v; printed:\n%s", name, r.err, r.out.String())
	}
}

func (r *run) waitFor(t *testing.T, name, line string) {
	t.Helper()
	r.waitForLong(t, name, line, 20*time.Second)
}

// waitForLong is waitFor with a wait of its own.
func (r *run) waitForLong(t *testing.T, name, line string, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !r.out.has(line) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q; printed:\n%s", name, line, r.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One peer answers and echoes, the other calls and sends; both exit after
// their first message.
func TestCallAndEcho(t *testing.T) {
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cases := []struct {
		name               string
		bobArgs, aliceArgs []string
		aliceFirst         bool
	}{
		{"websocket", nil, nil, false},
		{"longpoll-websocket", []string{"-transport", "longpoll"}, nil, false},
		{"gather-all", []string{"-gather-all", "-transport", "longpoll"}, []string{"-gather-all", "-transport", "longpoll"}, false},
		{"caller-first", nil, nil, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			room := fmt.Sprint("cmd-", i)
			common := []string{"-url", srv.URL, "-room", room, "-loopback"}
			bobArgs := append(append(append([]string{}, common...), "-peer", "bob", "-echo", "-exit-after-message"), tc.bobArgs...)
			aliceArgs := append(append(append([]string{}, common...), "-peer", "alice", "-call", "bob", "-send", "hello bob", "-exit-after-message"), tc.aliceArgs...)
			var alice, bob *run
			if tc.aliceFirst {
				alice = start(ctx, aliceArgs...)
				alice.waitFor(t, "alice", "joined ")
				bob = start(ctx, bobArgs...)
			} else {
				bob = start(ctx, bobArgs...)
				bob.waitFor(t, "bob", "joined ")
				alice = start(ctx, aliceArgs...)
			}
			alice.wait(t, "alice")
			bob.wait(t, "bob")
			t.Logf("alice printed:\n%s\nbob printed:\n%s", alice.out.String(), bob.out.String())
			for _, want := range []string{
				"joined room=" + room + " peer=alice",
				"calling peer=bob",
				"offer-sent peer=bob",
				"answer-received peer=bob",
				"datachannel-open peer=bob",
				`message-sent peer=bob text="hello bob"`,
				`message-received peer=bob text="hello bob"`,
			} {
				if !alice.out.has(want) {
					t.Errorf("alice did not print %q; printed:\n%s", want, alice.out.String())
				}
			}
			for _, want := range []string{
				"joined room=" + room + " peer=bob",
				"incoming-call peer=alice",
				"offer-received peer=alice",
				"answer-sent peer=alice",
				"ice-state peer=alice state=connected",
				`message-received peer=alice text="hello bob"`,
				`message-sent peer=alice text="hello bob" echo=true`,
			} {
				if !bob.out.has(want) {
					t.Errorf("bob did not print %q; printed:\n%s", want, bob.out.String())
				}
			}
			gatherAll := strings.Contains(tc.name, "gather-all")
			if got := alice.out.has("candidate-sent "); got == gatherAll {
				t.Errorf("alice trickled candidates: %v; printed:\n%s", got, alice.out.String())
			}
		})
	}
}

// The peer exits when its context ends, and says bye to its calls.
func TestStopsOnContext(t *testing.T) {
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bobCtx, stopBob := context.WithCancel(ctx)
	common := []string{"-url", srv.URL, "-room", "stop", "-loopback"}
	bob := start(bobCtx, append(common, "-peer", "bob")...)
	bob.waitFor(t, "bob", "joined ")
	alice := start(ctx, append(common, "-peer", "alice", "-call", "bob")...)
	alice.waitFor(t, "alice", "datachannel-open peer=bob")
	stopBob()
	bob.wait(t, "bob")
	alice.waitFor(t, "alice", "bye peer=bob")
	alice.waitFor(t, "alice", "peer-left peer=bob reason=leave")
	cancel()
	alice.wait(t, "alice")
}

func TestFlags(t *testing.T) {
	var out syncBuffer
	if err := peercmd.Main(context.Background(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(out.String(), "-call") || !strings.Contains(out.String(), "redis") {
		t.Fatalf("usage: %s", out.String())
	}
	if err := peercmd.Main(context.Background(), []string{"stray"}, &out); err == nil {
		t.Fatal("stray argument accepted")
	}
	err := peercmd.Main(context.Background(), []string{"-url", "http://127.0.0.1:1", "-room", "x"}, &out)
	if err == nil {
		t.Fatal("joined a broker that is not there")
	}
}

// startRedisBroker runs a broker with the WebSocket and Redis transports, on
// a redis-server of the test's own, until the test ends. It returns the
// broker's base URL and the Redis URL.
func startRedisBroker(t *testing.T) (base, redisURL string) {
	t.Helper()
	srv := redistest.Start(t)
	rt, err := redis.New(redis.Options{Client: srv.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := testbroker.Start(testbroker.Options{Transports: []broker.Transport{rt}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if !redistest.WaitFor(10*time.Second, func() bool { return rt.Ready() == nil }) {
		t.Fatalf("the Redis transport is not ready: %v", rt.Ready())
	}
	return s.URL, srv.URL()
}

// A peer on Redis answers and echoes a peer on WebSocket that calls it.
func TestCallOverRedis(t *testing.T) {
	base, redisURL := startRedisBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob := start(ctx, "-transport", "redis", "-url", redisURL, "-room", "redis", "-peer", "bob", "-loopback", "-echo", "-exit-after-message")
	bob.waitFor(t, "bob", "joined room=redis peer=bob transport=redis")
	alice := start(ctx, "-url", base, "-room", "redis", "-peer", "alice", "-loopback", "-call", "bob", "-send", "hello redis", "-exit-after-message")
	alice.wait(t, "alice")
	bob.wait(t, "bob")
	for _, want := range []string{"offer-received peer=alice", "answer-sent peer=alice", `message-sent peer=alice text="hello redis" echo=true`} {
		if !bob.out.has(want) {
			t.Errorf("bob did not print %q; printed:\n%s", want, bob.out.String())
		}
	}
	if want := `message-received peer=bob text="hello redis"`; !alice.out.has(want) {
		t.Errorf("alice did not print %q; printed:\n%s", want, alice.out.String())
	}
}

// TestRetry: under -retry a peer whose join is refused (its id is taken)
// says so and tries again until the join goes through, rather than exiting.
func TestRetry(t *testing.T) {
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	firstCtx, stopFirst := context.WithCancel(ctx)
	common := []string{"-url", srv.URL, "-room", "retry", "-peer", "bot", "-loopback"}
	first := start(firstCtx, common...)
	first.waitFor(t, "first bot", "joined ")
	second := start(ctx, append(common, "-retry", "50s")...)
	second.waitFor(t, "second bot", "join-failed ")
	stopFirst()
	first.wait(t, "first bot")
	second.waitForLong(t, "second bot", "joined room=retry peer=bot", 40*time.Second)
	cancel()
	second.wait(t, "second bot")

	// Without -retry, a refused join ends the peer.
	err = peercmd.Main(context.Background(), []string{"-url", "http://127.0.0.1:1", "-room", "x"}, &syncBuffer{})
	if err == nil {
		t.Fatal("joined a broker that is not there")
	}
}
