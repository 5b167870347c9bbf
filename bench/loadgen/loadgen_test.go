package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/bench/barerelay"
)

// brokerURLEnv names an environment variable that, when set to a running
// Switchboard broker's base URL, adds that broker to the servers every
// workload runs against.
const brokerURLEnv = "SWITCHBOARD_BENCH_URL"

// target is a server and the protocol and transport to drive it with.
type target struct {
	name, url, protocol, transport string
}

// startTargets starts the in-process servers: the bare relay, the fake
// PeerJS server and the fake Switchboard broker on both transports.
func startTargets(t *testing.T) []target {
	t.Helper()
	relay := barerelay.New()
	relaySrv := httptest.NewServer(relay)
	peerjs := newFakePeerJS()
	peerjsSrv := httptest.NewServer(peerjs)
	broker := newFakeBroker()
	brokerSrv := httptest.NewServer(broker.handler())
	t.Cleanup(func() {
		relay.Close()
		relaySrv.Close()
		peerjs.close()
		peerjsSrv.Close()
		broker.close()
		brokerSrv.Close()
	})
	targets := []target{
		{"raw", relaySrv.URL, ProtocolRaw, TransportWebSocket},
		{"peerjs", peerjsSrv.URL, ProtocolPeerJS, TransportWebSocket},
		{"switchboard-ws", brokerSrv.URL, ProtocolSwitchboard, TransportWebSocket},
		{"switchboard-lp", brokerSrv.URL, ProtocolSwitchboard, TransportLongPoll},
	}
	if u := os.Getenv(brokerURLEnv); u != "" {
		targets = append(targets,
			target{"broker-ws", u, ProtocolSwitchboard, TransportWebSocket},
			target{"broker-lp", u, ProtocolSwitchboard, TransportLongPoll})
	}
	return targets
}

// quick returns options for a brief run of workload against tg.
func quick(tg target, workload string) Options {
	return Options{
		Workload:    workload,
		URL:         tg.url,
		Protocol:    tg.protocol,
		Transport:   tg.transport,
		Duration:    250 * time.Millisecond,
		Warmup:      50 * time.Millisecond,
		Pairs:       4,
		Rate:        400,
		Conns:       40,
		Concurrency: 4,
	}
}

func TestWorkloads(t *testing.T) {
	for _, tg := range startTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			for _, w := range []string{WorkloadRelay, WorkloadLatency, WorkloadSetup, WorkloadIdle, WorkloadConnect} {
				t.Run(w, func(t *testing.T) {
					o := quick(tg, w)
					if w == WorkloadIdle && tg.protocol == ProtocolRaw {
						o.ServerPID = os.Getpid() // the relay runs in this process
					}
					runChecked(t, o)
				})
			}
		})
	}
}

// loopbackSources returns n where every 127.0.0.x address is loopback
// (Linux), else 0: elsewhere only 127.0.0.1 may be configured.
func loopbackSources(n int) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	return n
}

// runChecked runs o, logs its result and checks that it had no errors
// and measured something.
func runChecked(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(res)
	t.Logf("%s", line)
	if res.Errors != 0 {
		t.Errorf("errors: %v (first: %s)", res.ErrorKinds, res.FirstError)
	}
	checkResult(t, res)
	return res
}

// checkResult checks that res measured something.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	switch res.Workload {
	case WorkloadRelay:
		if res.Messages == 0 || res.MessagesPerSec <= 0 || res.BytesPerSec < res.MessagesPerSec*float64(res.Size) {
			t.Errorf("relay measured %d messages, %.0f/s, %.0f B/s", res.Messages, res.MessagesPerSec, res.BytesPerSec)
		}
	case WorkloadLatency:
		if res.Latency.Count == 0 || res.Latency.Count != res.Sent || res.Latency.Max < res.Latency.P50 {
			t.Errorf("latency measured %+v of %d sent", res.Latency, res.Sent)
		}
		// 400/s for 250 ms is 100 messages due: never more (the pacer
		// does not catch up in a burst), and fewer only when a loaded
		// machine holds the pacer back, which the send lag then shows.
		if res.Sent == 0 || res.Sent > 110 {
			t.Errorf("latency sent %d messages, want 1 to about 100", res.Sent)
		}
		if res.SendLag == nil || res.SendLag.Count != res.Sent {
			t.Errorf("latency send lag %+v of %d sent", res.SendLag, res.Sent)
		}
	case WorkloadSetup:
		if res.Setups == 0 || res.SetupTime.Count != res.Setups {
			t.Errorf("setup measured %d setups, %+v", res.Setups, res.SetupTime)
		}
	case WorkloadIdle:
		if res.Connected != res.Conns || res.Dropped != 0 || res.ConnectsPerSec <= 0 {
			t.Errorf("idle connected %d of %d, %d dropped", res.Connected, res.Conns, res.Dropped)
		}
		if res.Protocol == ProtocolRaw && (res.RSSSource != "proc" || res.RSSBefore <= 0 || res.RSSAfter <= 0) {
			t.Errorf("idle read RSS %d → %d from %q (%s)", res.RSSBefore, res.RSSAfter, res.RSSSource, res.RSSError)
		}
	case WorkloadConnect:
		if res.Cycles == 0 || res.ConnectTime.Count != res.Cycles {
			t.Errorf("connect measured %d cycles, %+v", res.Cycles, res.ConnectTime)
		}
	}
}

// TestRelayAcks runs enough traffic through the fake broker's bounded
// mailbox that a driver that did not acknowledge would be ended as a slow
// consumer.
func TestRelayAcks(t *testing.T) {
	broker := newFakeBroker()
	srv := httptest.NewServer(broker.handler())
	defer srv.Close()
	defer broker.close()
	o := quick(target{url: srv.URL, protocol: ProtocolSwitchboard, transport: TransportWebSocket}, WorkloadRelay)
	o.Pairs = 1
	o.Duration = 2 * time.Second
	res, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Messages <= int64(broker.bound) {
		t.Fatalf("relayed %d messages with %d errors %v (%s); want over %d and none", res.Messages, res.Errors, res.ErrorKinds, res.FirstError, broker.bound)
	}
	if broker.acks.Load() == 0 {
		t.Fatal("the driver sent no ack")
	}
}

// quiet discards Main's standard error output for the test.
func quiet(t *testing.T) {
	old := stderr
	stderr = io.Discard
	t.Cleanup(func() { stderr = old })
}

func TestMain_JSON(t *testing.T) {
	quiet(t)
	relay := barerelay.New()
	srv := httptest.NewServer(relay)
	defer srv.Close()
	defer relay.Close()
	var out bytes.Buffer
	err := Main(t.Context(), []string{
		"-url", srv.URL, "-protocol", "raw", "-workload", "relay",
		"-duration", "150ms", "-warmup", "0", "-pairs", "2", "-size", "1500",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("want one line of output, got %q", out.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workload", "messages_per_s", "bytes_per_s", "errors", "size"} {
		if _, ok := got[k]; !ok {
			t.Errorf("output has no %q: %s", k, out.String())
		}
	}
	if got["size"] != 1500.0 || got["warmup_s"] != 0.0 {
		t.Errorf("size %v, warmup %v: want 1500 and 0", got["size"], got["warmup_s"])
	}
	if _, ok := got["setups"]; ok {
		t.Errorf("relay output has setup fields: %s", out.String())
	}
}

func TestMain_BadFlags(t *testing.T) {
	quiet(t)
	for _, args := range [][]string{
		{"-workload", "nope"},
		{"-protocol", "nope"},
		{"-protocol", "raw", "-transport", "longpoll"},
		{"-transport", "carrier-pigeon"},
		{"-url", "ftp://example.com"},
		{"stray"},
	} {
		if err := Main(t.Context(), args, new(bytes.Buffer)); err == nil {
			t.Errorf("Main(%q) succeeded", args)
		}
	}
	if err := Main(t.Context(), []string{"-h"}, new(bytes.Buffer)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Main(-h) = %v, want flag.ErrHelp", err)
	}
}

func TestRunNoServer(t *testing.T) {
	o := Options{URL: "http://127.0.0.1:1", Protocol: ProtocolRaw, Pairs: 2, Duration: 100 * time.Millisecond}
	if _, err := Run(t.Context(), o); err == nil {
		t.Fatal("relay against no server succeeded")
	}
}

func TestRunCancelled(t *testing.T) {
	relay := barerelay.New()
	srv := httptest.NewServer(relay)
	defer srv.Close()
	defer relay.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	o := quick(target{url: srv.URL, protocol: ProtocolRaw}, WorkloadRelay)
	o.Duration = time.Minute
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || res.Seconds > 1 {
		t.Fatalf("cancelled run took %v and measured %.1f s", time.Since(start), res.Seconds)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond) // 1 µs … 100 ms
	}
	s := h.stats()
	within := func(name string, got, want float64) {
		t.Helper()
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s = %v ms, want %v ±1%%", name, got, want)
		}
	}
	within("p50", s.P50, 50)
	within("p99", s.P99, 99)
	within("p999", s.P999, 99.9)
	within("mean", s.Mean, 50)
	if s.Max != 100 || s.Count != 100000 {
		t.Errorf("max %v count %d, want 100 and 100000", s.Max, s.Count)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		i := bucketOf(v)
		if mid := bucketMid(i); mid < float64(v)*0.99-1 || mid > float64(v)*1.01+1 {
			t.Fatalf("value %d in bucket %d of middle %v", v, i, mid)
		}
	}
	if (&histogram{}).stats().P99 != 0 {
		t.Error("empty histogram has a p99")
	}
}

func TestPayloads(t *testing.T) {
	for _, size := range []int{1, 20, 200, 1500} {
		b := appendNumbered(nil, 123456, 987654321, size)
		var n numbered
		if err := json.Unmarshal(b, &n); err != nil || n.N != 123456 || n.T != 987654321 {
			t.Fatalf("size %d: %s: %v", size, b, err)
		}
		if size >= 40 && len(b) != size {
			t.Errorf("size %d: payload is %d bytes", size, len(b))
		}
	}
	for _, p := range []json.RawMessage{offerPayload, answerPayload} {
		var sd struct{ Type, SDP string }
		if err := json.Unmarshal(p, &sd); err != nil || !strings.HasPrefix(sd.SDP, "v=0\r\n") {
			t.Fatalf("bad description %s: %v", p, err)
		}
		if len(p) < 1400 || len(p) > 2000 {
			t.Errorf("%s description is %d bytes, want about 1.5 KB", sd.Type, len(p))
		}
	}
	if len(candidates) != 8 {
		t.Fatalf("%d candidates", len(candidates))
	}
	for _, c := range candidates {
		var ci struct {
			Candidate     *string `json:"candidate"`
			SDPMid        *string `json:"sdpMid"`
			SDPMLineIndex *int    `json:"sdpMLineIndex"`
		}
		if err := json.Unmarshal(c, &ci); err != nil || ci.Candidate == nil || !strings.HasPrefix(*ci.Candidate, "candidate:") ||
			ci.SDPMid == nil || ci.SDPMLineIndex == nil {
			t.Fatalf("bad candidate %s: %v", c, err)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "alice", "a-b_c.d", `q"uote`, "back\\slash", "ünï", "<tag>", "\x01"} {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil || got != s {
			t.Errorf("appendString(%q) = %s: %v", s, appendString(nil, s), err)
		}
	}
}

func TestParseRSS(t *testing.T) {
	status := "Name:\tswitchboard\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	if n, err := parseVmRSS([]byte(status)); err != nil || n != 12345*1024 {
		t.Errorf("parseVmRSS = %d, %v", n, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("parseVmRSS without VmRSS succeeded")
	}
	metrics := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes_total 1
process_resident_memory_bytes 2.4649728e+07
`
	if n, err := parseRSSMetric(strings.NewReader(metrics)); err != nil || n != 24649728 {
		t.Errorf("parseRSSMetric = %d, %v", n, err)
	}
	if n, err := parseRSSMetric(strings.NewReader(`process_resident_memory_bytes{job="x"} 1024` + "\n")); err != nil || n != 1024 {
		t.Errorf("parseRSSMetric with labels = %d, %v", n, err)
	}
	if _, err := parseRSSMetric(strings.NewReader("go_goroutines 5\n")); err == nil {
		t.Error("parseRSSMetric without the metric succeeded")
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct{ in, ws, http string }{
		{"http://127.0.0.1:8080", "ws://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://h/prefix/", "wss://h/prefix", "https://h/prefix"},
		{"ws://h:1", "ws://h:1", "http://h:1"},
		{"wss://h", "wss://h", "https://h"},
	} {
		w, err := wsBase(c.in)
		if err != nil || w.String() != c.ws {
			t.Errorf("wsBase(%q) = %v, %v; want %s", c.in, w, err, c.ws)
		}
		h, err := httpBase(c.in)
		if err != nil || h.String() != c.http {
			t.Errorf("httpBase(%q) = %v, %v; want %s", c.in, h, err, c.http)
		}
	}
}

func TestWindowCut(t *testing.T) {
	r := &run{o: Options{Duration: time.Hour}}
	w := r.newWindow()
	if !w.contains(time.Now()) {
		t.Fatal("window does not contain now")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	measured, completed := w.wait(ctx)
	if completed || measured.to.After(time.Now()) {
		t.Fatalf("cut window: completed %v, ends %v", completed, measured.to)
	}
	// What arrives while the run winds down must not count against the
	// shorter window.
	if w.contains(time.Now()) {
		t.Error("the workers' copy of the window still counts after the cut")
	}
}

// TestIdleSample holds idle connections from several source addresses and
// samples delivery to random held peers, on both transports.
func TestIdleSample(t *testing.T) {
	for _, tg := range startTargets(t) {
		if tg.protocol != ProtocolSwitchboard {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			o := quick(tg, WorkloadIdle)
			o.SampleRate = 200
			o.SourceAddrs = loopbackSources(3)
			d := runChecked(t, o).Delivery
			if d == nil || d.Sent == 0 || d.Latency.Count != d.Sent || d.SendLag.Count != d.Sent {
				t.Fatalf("delivery sample %+v", d)
			}
		})
	}
}

func TestSources(t *testing.T) {
	s, err := newSources(3, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		got = append(got, s.dialer().LocalAddr.String())
	}
	if want := "127.0.0.1:0 127.0.0.2:0 127.0.0.3:0 127.0.0.1:0"; strings.Join(got, " ") != want {
		t.Errorf("local addresses %q, want %q", got, want)
	}
	if s, err := newSources(1, "http://example.com"); err != nil || s.dialer().LocalAddr != nil {
		t.Errorf("one source: %v, %v", s, err)
	}
	if _, err := newSources(2, "http://example.com"); err == nil {
		t.Error("several sources for a host not on loopback: no error")
	}
}
