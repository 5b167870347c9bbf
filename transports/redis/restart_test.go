package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// outcomes collects, for numbered messages, whether each was delivered or
// refused to its sender.
type outcomes struct {
	mu        sync.Mutex
	delivered map[int]bool
	refused   map[int]string
	twice     []int
}

func (o *outcomes) deliver(i int) {
	o.mu.Lock()
	if o.delivered[i] {
		o.twice = append(o.twice, i)
	}
	o.delivered[i] = true
	o.mu.Unlock()
}

func (o *outcomes) refuse(i int, code string) {
	o.mu.Lock()
	o.refused[i] = code
	o.mu.Unlock()
}

// missing lists the messages below n with no outcome yet.
func (o *outcomes) missing(n int) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int
	for i := 0; i < n; i++ {
		if _, r := o.refused[i]; !o.delivered[i] && !r {
			out = append(out, i)
		}
	}
	return out
}

// TestRedisRestart kills Redis in the middle of a call between a Redis peer
// on node 1 and a WebSocket peer on node 2, and starts it again, empty.
// Meanwhile every readiness check reports the outage; afterwards the
// transport and both backplanes recover by themselves, the nodes claim their
// peers again and relay as before. A stream of messages sent all along is
// accounted for: each one was delivered (exactly once), or refused with an
// error that names it to its sender. None is lost silently.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	const ttl = 2 * time.Second
	bp1 := redistest.NewBackplane(t, srv, prefix, ttl)
	bp2 := redistest.NewBackplane(t, srv, prefix, ttl)
	opts := broker.Options{OfflineHold: time.Second, Rate: -1}
	opts.NodeID, opts.Backplane = "node1", bp1
	n1 := startNode(t, srv, opts, redis.Options{Prefix: prefix})
	opts.NodeID, opts.Backplane = "node2", bp2
	b2 := broker.New(opts)
	t.Cleanup(func() { b2.Close(broker.ReasonKicked) })
	ws := serveWS(t, b2)
	ready := func() error {
		for _, r := range []interface{ Ready() error }{n1.tr, bp1, bp2} {
			if err := r.Ready(); err != nil {
				return err
			}
		}
		return nil
	}
	if !redistest.WaitFor(10*time.Second, func() bool { return ready() == nil }) {
		t.Fatalf("not ready: %v", ready())
	}

	// The Redis peer has its own connection, which reconnects by itself,
	// and it resumes its session when that was cut or a seq went missing,
	// as a client library does: pub/sub loses what is in flight when Redis dies.
	peerClient := srv.Client(t)
	rp, _ := brokertest.Join(t, redistest.DialWith(peerClient, prefix, redistest.Options{Resume: true}), "call", "svc")
	wp, _ := brokertest.Join(t, ws, "call", "web")
	rp.Expect(broker.TypePeerJoined)
	wp.Send(`{"type":"offer","to":"svc","payload":{"type":"offer","sdp":"x"}}`)
	rp.Expect("offer")
	rp.Send(`{"type":"answer","to":"web","payload":{"type":"answer","sdp":"y"}}`)
	wp.Expect("answer")

	// From here the peers' connections are read by goroutines: web sends a
	// numbered message to svc every 10 ms, and any refusal it gets names one.
	got := &outcomes{delivered: map[int]bool{}, refused: map[int]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	read := func(c brokertest.Conn, fn func(brokertest.Envelope)) {
		defer wg.Done()
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			data, err := c.Recv(rctx)
			rcancel()
			if err != nil {
				continue
			}
			var env brokertest.Envelope
			if json.Unmarshal(data, &env) == nil {
				fn(env)
			}
		}
	}
	wg.Add(1)
	var seqMu sync.Mutex
	var seqs []uint64
	go read(rp.Conn, func(env brokertest.Envelope) {
		seqMu.Lock()
		seqs = append(seqs, env.Seq)
		seqMu.Unlock()
		if env.Type == "message" && env.From == "web" {
			var i int
			_ = json.Unmarshal(env.Payload, &i)
			got.deliver(i)
		}
	})
	// A WebSocket read cannot time out and go on, so this one reads until
	// the connection is dropped when the test ends.
	after := make(chan struct{}, 1)
	go func() {
		for {
			data, err := wp.Conn.Recv(context.Background())
			if err != nil {
				return
			}
			var env brokertest.Envelope
			if json.Unmarshal(data, &env) != nil {
				continue
			}
			if env.Type == "message" && string(env.Payload) == `"after"` {
				after <- struct{}{}
			}
			if env.Type != broker.TypeError {
				continue
			}
			var e brokertest.ErrorPayload
			_ = json.Unmarshal(env.Payload, &e)
			if i, err := strconv.Atoi(strings.TrimPrefix(e.Ref, "m")); err == nil && strings.HasPrefix(e.Ref, "m") {
				got.refuse(i, e.Code)
			}
		}
	}()
	var sent int
	var sentMu sync.Mutex
	stopSending := make(chan struct{})
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := 0; ; i++ {
			select {
			case <-stopSending:
				return
			case <-time.After(10 * time.Millisecond):
			}
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			err := wp.Conn.Send(sctx, []byte(fmt.Sprintf(`{"type":"message","to":"svc","id":"m%d","payload":%d}`, i, i)))
			scancel()
			if err != nil {
				return
			}
			sentMu.Lock()
			sent = i + 1
			sentMu.Unlock()
		}
	}()

	time.Sleep(300 * time.Millisecond)
	srv.Stop()
	if !redistest.WaitFor(10*time.Second, func() bool {
		return n1.tr.Ready() != nil && bp1.Ready() != nil && bp2.Ready() != nil
	}) {
		t.Fatalf("an outage went unreported: transport %v, backplane 1 %v, backplane 2 %v", n1.tr.Ready(), bp1.Ready(), bp2.Ready())
	}
	t.Logf("during the outage: %v", n1.tr.Ready())
	time.Sleep(2 * time.Second) // longer than go-redis's own retries of a command

	srv.Restart()
	if !redistest.WaitFor(15*time.Second, func() bool { return ready() == nil }) {
		t.Fatalf("did not recover: %v", ready())
	}
	// Redis lost everything: the nodes claim their peers again.
	if !redistest.WaitFor(10*time.Second, func() bool {
		ms, err := bp2.Members(context.Background(), "call")
		return err == nil && len(ms) == 2
	}) {
		ms, err := bp2.Members(context.Background(), "call")
		t.Fatalf("members after the restart: %+v %v", ms, err)
	}
	time.Sleep(500 * time.Millisecond) // relaying again
	close(stopSending)
	<-sendDone
	sentMu.Lock()
	total := sent
	sentMu.Unlock()

	// Everything sent is settled within the offline hold, one way or the other.
	if !redistest.WaitFor(10*time.Second, func() bool { return len(got.missing(total)) == 0 }) {
		seqMu.Lock()
		t.Logf("svc got seqs %v", seqs)
		seqMu.Unlock()
		t.Fatalf("of %d messages, these were neither delivered nor refused: %v", total, got.missing(total))
	}
	got.mu.Lock()
	codes := map[string]int{}
	for _, c := range got.refused {
		codes[c]++
	}
	last := -1
	for i := range got.delivered {
		last = max(last, i)
	}
	t.Logf("%d messages: %d delivered, refused: %v", total, len(got.delivered), codes)
	if len(got.twice) > 0 {
		t.Errorf("delivered twice: %v", got.twice)
	}
	if last < total-10 {
		t.Errorf("relaying did not resume: the last delivered is %d of %d", last, total)
	}
	got.mu.Unlock()
	cancel()
	wg.Wait()

	// Both ways, after the restart.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if err := rp.Conn.Send(rctx, []byte(`{"type":"message","to":"web","payload":"after"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-after:
	case <-rctx.Done():
		t.Fatal("web did not get svc's message after the restart")
	}
}
