package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	redistransport "github.com/switchboard-rtc/switchboard/transports/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestConcurrentPushes: pushes from many goroutines at once, which travel
// in shared pipelines, each get the next seq of their mailbox; each
// goroutine's pushes keep its order, and every mailbox holds them all. The
// scripts are flushed from Redis midway: the pushes load them again.
func TestConcurrentPushes(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	st := redistransport.NewStore(client, fmt.Sprintf("pipe%d", time.Now().UnixNano()))
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
				seq, _, err := st.Push(ctx, id, "message", []byte(fmt.Sprintf(`"payload":"g%d-%d"}`, g, i)), 0)
				if err != nil {
					errs <- err
					return
				}
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
		frames, last, err := st.Take(ctx, fmt.Sprint("s", i), 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		want := senders / sessions * each
		if len(frames) != want || last != uint64(want) {
			t.Fatalf("session %d holds %d frames up to seq %d, want %d", i, len(frames), last, want)
		}
		for k, f := range frames {
			if !strings.HasPrefix(string(f), fmt.Sprintf(`{"seq":%d,`, k+1)) {
				t.Fatalf("session %d, frame %d: %s", i, k, f)
			}
		}
	}
}
