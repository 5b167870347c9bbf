package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
)

// collect reads n message envelopes from c and returns their payloads as
// numbers, failing on any repeat or seq disorder.
func collect(t *testing.T, c *switchboard.Client, n int, timeout time.Duration) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []int
	var lastSeq uint64
	for len(got) < n {
		env, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s: after %d of %d messages: %v", c.Peer(), len(got), n, err)
		}
		if env.Seq != 0 {
			if env.Seq <= lastSeq {
				t.Fatalf("seq %d after %d", env.Seq, lastSeq)
			}
			lastSeq = env.Seq
		}
		if env.Type != switchboard.TypeMessage {
			continue
		}
		var i int
		if err := env.Decode(&i); err != nil {
			t.Fatal(err)
		}
		got = append(got, i)
	}
	return got
}

func checkSequence(t *testing.T, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d: %v", i, v, got)
		}
	}
}

// A receiver whose connection is cut while messages are sent to it gets
// every one of them once, in order, after it resumes.
func TestResumeDeliversWhatWasMissed(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			room := "missed-" + tr
			var cut cutter
			var states []switchboard.State
			var statesMu sync.Mutex
			b := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "bob", Transport: tr, NetDialContext: cut.dial,
				OnStateChange: func(s switchboard.State) { statesMu.Lock(); states = append(states, s); statesMu.Unlock() }})
			a := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice"})
			ctx := context.Background()
			const n = 100
			for i := range n {
				if i == 10 || i == 50 {
					if cut.cut() == 0 {
						t.Fatal("no connection to cut")
					}
				}
				if err := a.SendMessage(ctx, "bob", i); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			checkSequence(t, collect(t, b, n, 20*time.Second), n)
			statesMu.Lock()
			defer statesMu.Unlock()
			// A long-poll client may get through on a new request, without a
			// resume.
			if tr == "websocket" && (len(states) < 2 || states[0] != switchboard.StateReconnecting) {
				t.Fatalf("states %v", states)
			}
			for _, p := range a.Peers() {
				if p.Peer != "bob" {
					t.Fatalf("alice sees %v", a.Peers())
				}
			}
		})
	}
}

// A sender whose connection is cut again and again while it sends gets every
// message through once, in order: queued sends go out after the resume and
// retried ones are dropped by the broker by their id.
func TestSendsSurviveCuts(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			room := "sends-" + tr
			var cut cutter
			a := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice", Transport: tr, NetDialContext: cut.dial})
			b := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "bob"})
			ctx := context.Background()
			const n = 300
			var cuts atomic.Int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range n {
					if err := a.SendMessage(ctx, "bob", i); err != nil {
						t.Error(err)
						return
					}
					if i%25 == 0 {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
			go func() {
				for range 5 {
					time.Sleep(15 * time.Millisecond)
					if cut.cut() > 0 {
						cuts.Add(1)
					}
				}
			}()
			checkSequence(t, collect(t, b, n, 30*time.Second), n)
			<-done
			if cuts.Load() == 0 {
				t.Fatal("nothing was cut")
			}
			// Nothing more arrives: no duplicates trail behind.
			a.SendMessage(ctx, "bob", -1)
			if got := collect(t, b, 1, 10*time.Second); got[0] != -1 {
				t.Fatalf("after the %d messages got %v", n, got)
			}
		})
	}
}

// Every connection to the broker is cut at once, on the broker's side.
func TestBrokerSideCut(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			room := "brokercut-" + tr
			a := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice", Transport: tr})
			b := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "bob", Transport: tr})
			ctx := context.Background()
			for i := range 20 {
				if i == 7 {
					srv.CutConnections()
				}
				if err := a.SendMessage(ctx, "bob", i); err != nil {
					t.Fatal(err)
				}
				if err := b.SendMessage(ctx, "alice", i); err != nil {
					t.Fatal(err)
				}
			}
			checkSequence(t, collect(t, b, 20, 20*time.Second), 20)
			checkSequence(t, collect(t, a, 20, 20*time.Second), 20)
		})
	}
}

// blockingDialer fails every dial while blocked, like a network that is down.
type blockingDialer struct {
	cutter
	blocked atomic.Bool
}

func (d *blockingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.blocked.Load() {
		return nil, errors.New("network down")
	}
	return d.cutter.dial(ctx, network, addr)
}

// A client that cannot come back within the broker's resume window is told
// so: it ends with session-expired, and the others see it time out.
func TestResumeWindowPassed(t *testing.T) {
	srv := startBroker(t, testbroker.Options{Broker: broker.Options{ResumeWindow: 200 * time.Millisecond}, LongPollIdle: 200 * time.Millisecond})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			room := "expired-" + tr
			var d blockingDialer
			b := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "bob", Transport: tr, NetDialContext: d.dial})
			a := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice"})
			d.blocked.Store(true)
			d.cut()
			env := recv(t, a)
			var pl switchboard.PeerLeft
			if env.Type != switchboard.TypePeerLeft || env.Decode(&pl) != nil || pl.Reason != "timeout" {
				t.Fatalf("alice got %+v", env)
			}
			d.blocked.Store(false)
			select {
			case <-b.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("bob did not end")
			}
			var pe *switchboard.Error
			if !errors.As(b.Err(), &pe) || pe.Code != switchboard.CodeSessionExpired {
				t.Fatalf("bob ended with %v, want session-expired", b.Err())
			}
			for {
				env, err := b.Recv(context.Background())
				if err == nil {
					if env.Type != switchboard.TypePeerJoined {
						t.Fatalf("bob got %+v", env)
					}
					continue
				}
				if !errors.As(err, &pe) {
					t.Fatalf("recv: %v", err)
				}
				break
			}
			if err := b.Send(context.Background(), switchboard.Envelope{Type: "message"}); !errors.As(err, &pe) {
				t.Fatalf("send: %v", err)
			}
		})
	}
}

// With reconnection off, or when it cannot reconnect in time, the client
// ends with ErrReconnectFailed.
func TestReconnectGivesUp(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, timeout := range []time.Duration{-1, 300 * time.Millisecond} {
		t.Run(fmt.Sprint(timeout), func(t *testing.T) {
			var d blockingDialer
			c := dial(t, srv.URL, switchboard.Options{Room: "giveup", NetDialContext: d.dial, ReconnectTimeout: timeout})
			d.blocked.Store(true)
			d.cut()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("client did not end")
			}
			if !errors.Is(c.Err(), switchboard.ErrReconnectFailed) {
				t.Fatalf("ended with %v", c.Err())
			}
		})
	}
}

// Close while reconnecting ends the client at once.
func TestCloseWhileReconnecting(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	var d blockingDialer
	c := dial(t, srv.URL, switchboard.Options{Room: "closing", NetDialContext: d.dial, BackoffMin: time.Second, BackoffMax: time.Second})
	d.blocked.Store(true)
	d.cut()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("close took %v", time.Since(start))
	}
	if !errors.Is(c.Err(), switchboard.ErrClosed) {
		t.Fatalf("err %v", c.Err())
	}
}
