package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// BenchmarkStorePush stores 200 B messages from 100 senders at once, each
// to a session of its own and waiting for its push before the next, as
// the relay workload's senders do: what one message costs through the
// store's batching, Redis included (per message, whatever the batch). It
// reports the messages stored per script call too. In "1" each push holds
// one message, as the broker pushes them now; in "32" a push holds 32 for
// one session, as a broker that pushed a connection's read at once would.
func BenchmarkStorePush(b *testing.B) {
	for _, per := range []int{1, 32} {
		b.Run(fmt.Sprint(per), func(b *testing.B) { benchmarkStorePush(b, per) })
	}
}

func benchmarkStorePush(b *testing.B, per int) {
	srv := redistest.Start(b)
	client := srv.Client(b)
	st := redis.NewStore(client, fmt.Sprintf("bench%d", time.Now().UnixNano()))
	ctx := context.Background()
	const sessions = 100
	for i := range sessions {
		if err := st.Save(ctx, broker.SessionRecord{ID: fmt.Sprint("s", i), Room: "r", Peer: fmt.Sprint("p", i)}, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte(`{"type":"message","from":"a","to":"b","payload":"` + strings.Repeat("x", 150) + `"}`)
	before, _ := client.Info(ctx, "commandstats").Result()
	var next atomic.Int64
	b.SetParallelism((sessions + 1) / 2) // per GOMAXPROCS: about 100 senders on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	var pushed atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("s", next.Add(1)%sessions)
		ds := make([]broker.Delivery, per)
		for {
			n := 0
			for n < per && pb.Next() {
				n++
			}
			if n == 0 {
				return
			}
			for i := range ds[:n] {
				ds[i] = broker.Delivery{Session: id, Body: body, Max: 1024}
			}
			if err := st.Push(ctx, ds[:n]); err != nil || ds[0].Err != nil {
				b.Fatal(err, ds[0].Err)
			}
			pushed.Add(int64(n))
			if last := ds[n-1].Seq; last%256 < uint64(n) { // the reader keeps up: nothing is slow
				if _, err := st.Ack(ctx, id, last); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.StopTimer()
	after, _ := client.Info(ctx, "commandstats").Result()
	if calls := evalCalls(after) - evalCalls(before); calls > 0 {
		b.ReportMetric(float64(pushed.Load())/float64(calls), "msgs/call")
	}
}

// evalCalls is the EVAL and EVALSHA calls counted in INFO commandstats.
func evalCalls(info string) int64 {
	var n int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				var c int64
				fmt.Sscan(strings.SplitN(rest, ",", 2)[0], &c)
				n += c
			}
		}
	}
	return n
}
