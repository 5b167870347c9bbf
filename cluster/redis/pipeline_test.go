package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestConcurrentPushes: pushes from many goroutines at once, which travel
// in shared pipelines, each get the next seq of their mailbox; each
// goroutine's pushes keep its order, and every mailbox holds them all. The
// scripts are flushed from Redis midway: the pushes load them again.
func TestConcurrentPushes(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	st := redis.NewStore(client, fmt.Sprintf("pipe%d", time.Now().UnixNano()))
	ctx := context.Background()
	const sessions, senders, each = 4, 32, 50
	for i := range sessions {
		if err := st.Save(ctx, broker.SessionRecord{ID: fmt.Sprint("s", i), Room: "r", Peer: fmt.Sprint("p", i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Go(func() {
			id := fmt.Sprint("s", g%sessions)
			var last uint64
			for i := range each {
				if g == 0 && i == each/2 {
					client.ScriptFlush(ctx)
				}
				ds := []broker.Delivery{{Session: id, Body: []byte(fmt.Sprintf(`"payload":"g%d-%d"}`, g, i))}}
				if err := st.Push(ctx, ds); err != nil || ds[0].Err != nil {
					errs <- fmt.Errorf("push: %v %v", err, ds[0].Err)
					return
				}
				seq := ds[0].Seq
				if seq <= last {
					errs <- fmt.Errorf("sender %d: seq %d after %d", g, seq, last)
					return
				}
				last = seq
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range sessions {
		msgs, err := st.Take(ctx, fmt.Sprint("s", i), 0, 10000, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := senders / sessions * each
		if len(msgs) != want || msgs[len(msgs)-1].Seq != uint64(want) {
			t.Fatalf("session %d holds %d messages, want %d", i, len(msgs), want)
		}
		for k, m := range msgs {
			if m.Seq != uint64(k+1) || !strings.HasPrefix(string(m.Body), `"payload":"g`) {
				t.Fatalf("session %d, message %d: seq %d %s", i, k, m.Seq, m.Body)
			}
		}
	}
}
