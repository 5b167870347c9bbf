package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// StoreOptions says what a Store under RunStore does beyond the contract's
// core.
type StoreOptions struct {
	// CountsBytes: the store honours Delivery.MaxBytes (the memory store
	// does; the Redis one bounds by count only).
	CountsBytes bool
}

// RunStore runs the broker.Store contract on the stores newStore makes:
// records, seqs, bodies handed back as they were given, batches across
// sessions, Take, Written, Ack, the mailbox bound and what it forgets,
// Seqs, Delete, and concurrent pushes. Every Store implementation runs it.
//
// newStore is called once for each subtest and must return a fresh store
// (a new key prefix, say), arranging its own closing with t.Cleanup.
func RunStore(t *testing.T, newStore func(t *testing.T) broker.Store, opts StoreOptions) {
	tests := []struct {
		name string
		fn   func(*testing.T, broker.Store)
	}{
		{"SaveLoad", testStoreSaveLoad},
		{"PushTakeOpaque", testStorePushTake},
		{"PushBatchAcrossSessions", testStorePushBatch},
		{"PushUnknownSession", testStorePushUnknown},
		{"TakeAfterAndCount", testStoreTakeWindow},
		{"AckForgets", testStoreAck},
		{"BoundForgetsWrittenFirst", testStoreBound},
		{"WrittenWithoutTaking", testStoreWritten},
		{"UnboundedPush", testStoreUnbounded},
		{"StartsAtLast", testStoreStartsAtLast},
		{"SaveKeepsCounters", testStoreSaveKeeps},
		{"Delete", testStoreDelete},
		{"ConcurrentPushes", testStoreConcurrent},
	}
	if opts.CountsBytes {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, broker.Store)
		}{"BoundByBytes", testStoreBytes})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// storeCtx is the deadline of every call the suite makes.
func storeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func saveSession(t *testing.T, st broker.Store, id string, last uint64) {
	t.Helper()
	rec := broker.SessionRecord{ID: id, Room: "room", Peer: "peer-" + id, Node: "n1", Transport: "test", Last: last}
	if err := st.Save(storeCtx(t), rec, time.Minute); err != nil {
		t.Fatalf("Save(%s): %v", id, err)
	}
}

// push pushes bodies to id, each within max, and returns their seqs and
// whether the last was slow.
func push(t *testing.T, st broker.Store, id string, max int, bodies ...string) ([]uint64, bool) {
	t.Helper()
	ds := make([]broker.Delivery, len(bodies))
	for i, b := range bodies {
		ds[i] = broker.Delivery{Session: id, Body: []byte(b), Max: max}
	}
	if err := st.Push(storeCtx(t), ds); err != nil {
		t.Fatalf("Push: %v", err)
	}
	seqs := make([]uint64, len(ds))
	for i, d := range ds {
		if d.Err != nil {
			t.Fatalf("Push of %q: %v", bodies[i], d.Err)
		}
		seqs[i] = d.Seq
	}
	return seqs, len(ds) > 0 && ds[len(ds)-1].Slow
}

func take(t *testing.T, st broker.Store, id string, after uint64, n int) []broker.Stored {
	t.Helper()
	out, err := st.Take(storeCtx(t), id, after, n, nil)
	if err != nil {
		t.Fatalf("Take(%d, %d): %v", after, n, err)
	}
	return out
}

// wantStored checks that got holds bodies b<from>..b<to> with their seqs.
func wantStored(t *testing.T, what string, got []broker.Stored, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from+1 && !(to < from && len(got) == 0) {
		t.Fatalf("%s: %d messages, want seqs %d..%d: %v", what, len(got), from, to, got)
	}
	for i, m := range got {
		seq := from + uint64(i)
		if m.Seq != seq || string(m.Body) != fmt.Sprintf("b%d", seq) {
			t.Fatalf("%s: message %d is seq %d %q, want seq %d %q", what, i, m.Seq, m.Body, seq, fmt.Sprintf("b%d", seq))
		}
	}
}

func bodies(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("b%d", i))
	}
	return out
}

func wantExpired(t *testing.T, what string, err error) {
	t.Helper()
	var pe *broker.Error
	if !errors.As(err, &pe) || pe.Code != broker.CodeSessionExpired {
		t.Fatalf("%s: %v, want session-expired", what, err)
	}
}

func testStoreSaveLoad(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	if _, err := st.Load(ctx, "nobody"); !errors.Is(err, broker.ErrNoSession) {
		t.Fatalf("Load of no session: %v, want ErrNoSession", err)
	}
	rec := broker.SessionRecord{ID: "s1", Room: "r", Peer: "p", Meta: []byte(`{"a":1}`), Node: "n1", Transport: "websocket"}
	if err := st.Save(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || got.Room != rec.Room || got.Peer != rec.Peer || string(got.Meta) != string(rec.Meta) || got.Node != rec.Node || got.Transport != rec.Transport {
		t.Fatalf("Load gave %+v, want %+v", got, rec)
	}
	rec.Node = "n2"
	if err := st.Save(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Load(ctx, "s1"); got.Node != "n2" {
		t.Fatalf("after a second Save the node is %q", got.Node)
	}
	if err := st.Touch(ctx, []string{"s1", "nobody"}, time.Minute); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if err := st.Touch(ctx, nil, time.Minute); err != nil {
		t.Fatalf("Touch of none: %v", err)
	}
}

func testStorePushTake(t *testing.T, st broker.Store) {
	saveSession(t, st, "s1", 0)
	// The store keeps bytes, not JSON: it must not look inside.
	odd := []string{`"v":1,"type":"message"}`, "not json at all {", "", "\x00\xff binary", `{"seq":99,`}
	seqs, slow := push(t, st, "s1", 16, odd...)
	if slow {
		t.Fatal("slow below the bound")
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v, want 1..%d", seqs, len(odd))
		}
	}
	got := take(t, st, "s1", 0, 100)
	if len(got) != len(odd) {
		t.Fatalf("Take gave %d messages, want %d", len(got), len(odd))
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) || string(m.Body) != odd[i] {
			t.Fatalf("message %d: seq %d body %q, want seq %d body %q", i, m.Seq, m.Body, i+1, odd[i])
		}
	}
	// buf is appended to.
	buf := []broker.Stored{{Seq: 77}}
	out, err := st.Take(storeCtx(t), "s1", 3, 100, buf)
	if err != nil || len(out) != 3 || out[0].Seq != 77 || out[1].Seq != 4 {
		t.Fatalf("Take into a buffer: %v %v", out, err)
	}
	if last, dropped, err := st.Seqs(storeCtx(t), "s1"); err != nil || last != 5 || dropped != 0 {
		t.Fatalf("Seqs: %d %d %v, want 5 0", last, dropped, err)
	}
}

func testStorePushBatch(t *testing.T, st broker.Store) {
	saveSession(t, st, "a", 0)
	saveSession(t, st, "b", 10)
	ds := []broker.Delivery{
		{Session: "a", Body: []byte("b1"), Max: 16},
		{Session: "b", Body: []byte("b11"), Max: 16},
		{Session: "nobody", Body: []byte("x"), Max: 16},
		{Session: "a", Body: []byte("b2"), Max: 16},
		{Session: "b", Body: []byte("b12"), Max: 16},
	}
	if err := st.Push(storeCtx(t), ds); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{1, 11, 0, 2, 12} {
		d := ds[i]
		if i == 2 {
			if !errors.Is(d.Err, broker.ErrNoSession) {
				t.Fatalf("delivery to no session: %v, want ErrNoSession", d.Err)
			}
			continue
		}
		if d.Err != nil || d.Seq != want {
			t.Fatalf("delivery %d: seq %d err %v, want seq %d", i, d.Seq, d.Err, want)
		}
	}
	wantStored(t, "a", take(t, st, "a", 0, 10), 1, 2)
	wantStored(t, "b", take(t, st, "b", 10, 10), 11, 12)
	if err := st.Push(storeCtx(t), nil); err != nil {
		t.Fatalf("Push of nothing: %v", err)
	}
}

func testStorePushUnknown(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	ds := []broker.Delivery{{Session: "nobody", Body: []byte("x"), Max: 4}}
	_ = st.Push(ctx, ds)
	if !errors.Is(ds[0].Err, broker.ErrNoSession) {
		t.Fatalf("Push to no session: %v, want ErrNoSession", ds[0].Err)
	}
	_, err := st.Take(ctx, "nobody", 0, 10, nil)
	wantExpired(t, "Take of no session", err)
	if _, err := st.Ack(ctx, "nobody", 0); !errors.Is(err, broker.ErrNoSession) {
		t.Fatalf("Ack of no session: %v, want ErrNoSession", err)
	}
	if _, _, err := st.Seqs(ctx, "nobody"); !errors.Is(err, broker.ErrNoSession) {
		t.Fatalf("Seqs of no session: %v, want ErrNoSession", err)
	}
	// The push did not make the session.
	if _, err := st.Load(ctx, "nobody"); !errors.Is(err, broker.ErrNoSession) {
		t.Fatalf("Load after a push to no session: %v", err)
	}
}

func testStoreTakeWindow(t *testing.T, st broker.Store) {
	saveSession(t, st, "s1", 0)
	if got := take(t, st, "s1", 0, 10); len(got) != 0 {
		t.Fatalf("Take of an empty mailbox: %v", got)
	}
	push(t, st, "s1", 100, bodies(1, 10)...)
	wantStored(t, "first 4", take(t, st, "s1", 0, 4), 1, 4)
	wantStored(t, "after 4", take(t, st, "s1", 4, 4), 5, 8)
	wantStored(t, "the rest", take(t, st, "s1", 8, 100), 9, 10)
	wantStored(t, "again", take(t, st, "s1", 2, 3), 3, 5)
	if got := take(t, st, "s1", 10, 10); len(got) != 0 {
		t.Fatalf("Take after the last: %v", got)
	}
}

func testStoreAck(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	push(t, st, "s1", 100, bodies(1, 6)...)
	if ok, err := st.Ack(ctx, "s1", 7); err != nil || ok {
		t.Fatalf("Ack of a seq never given: %v %v, want false", ok, err)
	}
	if ok, err := st.Ack(ctx, "s1", 4); err != nil || !ok {
		t.Fatalf("Ack(4): %v %v", ok, err)
	}
	wantStored(t, "after an ack", take(t, st, "s1", 0, 100), 5, 6)
	if ok, err := st.Ack(ctx, "s1", 2); err != nil || !ok {
		t.Fatalf("an older Ack: %v %v", ok, err)
	}
	wantStored(t, "after an older ack", take(t, st, "s1", 4, 100), 5, 6)
	if ok, err := st.Ack(ctx, "s1", 6); err != nil || !ok {
		t.Fatalf("Ack(6): %v %v", ok, err)
	}
	if got := take(t, st, "s1", 6, 100); len(got) != 0 {
		t.Fatalf("after acking all: %v", got)
	}
	// Acknowledged is not forgotten unacknowledged.
	if _, dropped, _ := st.Seqs(ctx, "s1"); dropped != 0 {
		t.Fatalf("dropped %d after acks", dropped)
	}
	seqs, _ := push(t, st, "s1", 100, "b7")
	if seqs[0] != 7 {
		t.Fatalf("seq after acks: %d", seqs[0])
	}
}

func testStoreBound(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	const max = 4
	if _, slow := push(t, st, "s1", max, bodies(1, 4)...); slow {
		t.Fatal("slow at the bound")
	}
	// Over the bound with nothing written: kept, but slow.
	if _, slow := push(t, st, "s1", max, "b5"); !slow {
		t.Fatal("not slow past the bound with nothing written")
	}
	wantStored(t, "nothing forgotten while unwritten", take(t, st, "s1", 0, 2), 1, 2)
	// 1 and 2 are written now: the next pushes forget them, oldest first.
	if _, slow := push(t, st, "s1", max, "b6"); slow {
		t.Fatal("slow when written messages could be forgotten")
	}
	if last, dropped, err := st.Seqs(ctx, "s1"); err != nil || last != 6 || dropped != 2 {
		t.Fatalf("Seqs: last %d dropped %d %v, want 6 2", last, dropped, err)
	}
	_, err := st.Take(ctx, "s1", 1, 10, nil)
	wantExpired(t, "Take from before what was forgotten", err)
	wantStored(t, "the rest", take(t, st, "s1", 2, 10), 3, 6)
	if _, slow := push(t, st, "s1", max, bodies(7, 10)...); slow {
		t.Fatal("slow with 4 written to forget")
	}
	if _, dropped, _ := st.Seqs(ctx, "s1"); dropped != 6 {
		t.Fatalf("dropped %d, want 6", dropped)
	}
	wantStored(t, "within the bound", take(t, st, "s1", 6, 10), 7, 10)
}

func testStoreWritten(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	push(t, st, "s1", 4, bodies(1, 4)...)
	if err := st.Written(ctx, "s1", 3); err != nil {
		t.Fatal(err)
	}
	if _, slow := push(t, st, "s1", 4, "b5", "b6", "b7"); slow {
		t.Fatal("slow with 3 marked written")
	}
	if _, dropped, _ := st.Seqs(ctx, "s1"); dropped != 3 {
		t.Fatalf("dropped %d, want 3", dropped)
	}
	if _, slow := push(t, st, "s1", 4, "b8"); !slow {
		t.Fatal("not slow past the bound with nothing more written")
	}
	wantStored(t, "kept", take(t, st, "s1", 3, 10), 4, 8)
}

func testStoreUnbounded(t *testing.T, st broker.Store) {
	saveSession(t, st, "s1", 0)
	if _, slow := push(t, st, "s1", 0, bodies(1, 20)...); slow {
		t.Fatal("slow with no bound")
	}
	wantStored(t, "all kept", take(t, st, "s1", 0, 100), 1, 20)
}

func testStoreStartsAtLast(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 41)
	if last, dropped, err := st.Seqs(ctx, "s1"); err != nil || last != 41 || dropped != 41 {
		t.Fatalf("Seqs of a session restored at 41: %d %d %v", last, dropped, err)
	}
	_, err := st.Take(ctx, "s1", 40, 10, nil)
	wantExpired(t, "Take from before the restored counter", err)
	seqs, _ := push(t, st, "s1", 16, "b42")
	if seqs[0] != 42 {
		t.Fatalf("first seq %d, want 42", seqs[0])
	}
	wantStored(t, "after the restore", take(t, st, "s1", 41, 10), 42, 42)
}

func testStoreSaveKeeps(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	push(t, st, "s1", 16, bodies(1, 3)...)
	saveSession(t, st, "s1", 100) // adopted by another node: Last is for a store that lost it
	if last, _, _ := st.Seqs(ctx, "s1"); last != 3 {
		t.Fatalf("a second Save moved last to %d", last)
	}
	wantStored(t, "kept across Save", take(t, st, "s1", 0, 10), 1, 3)
}

func testStoreDelete(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	push(t, st, "s1", 16, "b1")
	if err := st.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, "s1"); !errors.Is(err, broker.ErrNoSession) {
		t.Fatalf("Load after Delete: %v", err)
	}
	ds := []broker.Delivery{{Session: "s1", Body: []byte("x"), Max: 16}}
	_ = st.Push(ctx, ds)
	if !errors.Is(ds[0].Err, broker.ErrNoSession) {
		t.Fatalf("Push after Delete: %v", ds[0].Err)
	}
	if err := st.Delete(ctx, "s1"); err != nil {
		t.Fatalf("a second Delete: %v", err)
	}
}

func testStoreConcurrent(t *testing.T, st broker.Store) {
	saveSession(t, st, "s1", 0)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ds := []broker.Delivery{{Session: "s1", Body: []byte(fmt.Sprintf("w%d-%d", w, i))}}
				if err := st.Push(context.Background(), ds); err != nil || ds[0].Err != nil {
					errs <- fmt.Errorf("push: %v %v", err, ds[0].Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := take(t, st, "s1", 0, workers*each+10)
	if len(got) != workers*each {
		t.Fatalf("%d messages after %d concurrent pushes", len(got), workers*each)
	}
	next := map[string]int{}
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
		var w, n int
		if _, err := fmt.Sscanf(string(m.Body), "w%d-%d", &w, &n); err != nil {
			t.Fatalf("body %q", m.Body)
		}
		key := fmt.Sprint(w)
		if n != next[key] {
			t.Fatalf("worker %d's message %d came where %d was due: one goroutine's pushes out of order", w, n, next[key])
		}
		next[key]++
	}
}

func testStoreBytes(t *testing.T, st broker.Store) {
	ctx := storeCtx(t)
	saveSession(t, st, "s1", 0)
	body := make([]byte, 100)
	pushSized := func() bool {
		t.Helper()
		ds := []broker.Delivery{{Session: "s1", Body: body, Max: 1000, MaxBytes: 300}}
		if err := st.Push(ctx, ds); err != nil || ds[0].Err != nil {
			t.Fatal(err, ds[0].Err)
		}
		return ds[0].Slow
	}
	for i := range 3 {
		if pushSized() {
			t.Fatalf("slow at %d bytes of 300", (i+1)*100)
		}
	}
	if !pushSized() {
		t.Fatal("not slow at 400 bytes of 300, nothing written")
	}
	take(t, st, "s1", 0, 2)
	if pushSized() {
		t.Fatal("slow when written messages could be forgotten")
	}
	if _, dropped, _ := st.Seqs(ctx, "s1"); dropped != 2 {
		t.Fatalf("dropped %d, want 2", dropped)
	}
	// One message larger than the bound is kept alone.
	if ok, err := st.Ack(ctx, "s1", 5); !ok || err != nil {
		t.Fatalf("Ack(5): %v %v", ok, err)
	}
	ds := []broker.Delivery{{Session: "s1", Body: make([]byte, 1000), Max: 1000, MaxBytes: 300}}
	if err := st.Push(ctx, ds); err != nil || ds[0].Slow {
		t.Fatalf("one message over the byte bound, alone: slow %v %v", ds[0].Slow, err)
	}
}
