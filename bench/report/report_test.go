package main

import (
	"math"
	"strings"
	"testing"
)

// results is a small results file: a meta line, three rounds of relay at
// 200 B on three servers, a latency case, idle, a failed run and a run that
// predates the "server" field.
const results = `{"meta":{"date":"2026-01-02T03:04:05Z","nproc":2,"cpu":"Test CPU","command":"ROUNDS=3 bench/compare.sh","rounds":3,"duration":"5s","go":"go1.26.0","node":"v20.1.0","peerjs":"1.0.2"}}
{"server":"switchboard","round":1,"case":"relay-200","flags":"-workload relay -size 200 -protocol switchboard","wall_s":6,"server_cpu_s":2.7,"loadgen_cpu_s":5.4,"warmup_s":1,"duration_s":5,"workload":"relay","protocol":"switchboard","transport":"websocket","size":200,"errors":0,"messages_per_s":90000}
{"server":"switchboard-longpoll","round":1,"workload":"relay","protocol":"switchboard","transport":"longpoll","size":200,"errors":0,"messages_per_s":40000}
{"server":"peerjs","round":1,"wall_s":6,"server_cpu_s":2.4,"loadgen_cpu_s":4.8,"warmup_s":1,"duration_s":5,"workload":"relay","protocol":"peerjs","transport":"websocket","size":200,"errors":0,"messages_per_s":40000}
{"server":"barerelay","round":1,"wall_s":6,"server_cpu_s":3.6,"loadgen_cpu_s":7.2,"warmup_s":1,"duration_s":5,"workload":"relay","protocol":"raw","transport":"websocket","size":200,"errors":0,"messages_per_s":100000}

{"server":"switchboard","round":2,"workload":"relay","protocol":"switchboard","transport":"websocket","size":200,"errors":2,"error_kinds":{"order":2},"first_error":"x | y","messages_per_s":70000}
{"server":"peerjs","round":2,"workload":"relay","protocol":"peerjs","transport":"websocket","size":200,"errors":0,"messages_per_s":30000}
{"server":"barerelay","round":2,"workload":"relay","protocol":"raw","transport":"websocket","size":200,"errors":0,"messages_per_s":80000}
{"round":3,"workload":"relay","protocol":"switchboard","transport":"websocket","size":200,"errors":0,"messages_per_s":80000}
{"server":"peerjs","round":3,"workload":"relay","size":200,"failed":"exit 1: boom"}
{"server":"barerelay","round":3,"workload":"relay","protocol":"raw","transport":"websocket","size":200,"errors":0,"messages_per_s":90000}
{"server":"switchboard","round":1,"workload":"latency","protocol":"switchboard","size":200,"rate":2000,"errors":0,"latency_ms":{"count":10,"p50":0.5,"p99":0.9,"p999":2,"max":3}}
{"server":"switchboard","round":2,"workload":"latency","protocol":"switchboard","size":200,"rate":2000,"errors":0,"latency_ms":{"count":10,"p50":0.7,"p99":1.5,"p999":2,"max":3}}
{"server":"peerjs","round":1,"workload":"latency","protocol":"peerjs","size":200,"rate":2000,"errors":0,"latency_ms":{"count":10,"p50":0.6,"p99":2,"p999":4,"max":5}}
{"server":"switchboard","round":1,"workload":"idle","protocol":"switchboard","errors":0,"conns":100,"connected":100,"rss_source":"proc","rss_after":5000000,"bytes_per_conn":9000}
{"server":"peerjs","round":1,"workload":"idle","protocol":"peerjs","errors":0,"conns":100,"connected":100,"rss_source":"proc","rss_after":5000000,"bytes_per_conn":8000}
{"server":"barerelay","round":1,"workload":"idle","protocol":"raw","errors":0,"conns":100,"connected":90,"rss_source":"none","rss_error":"no /metrics"}
`

func parse(t *testing.T) *Data {
	t.Helper()
	d, err := Parse(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{5}, 5, true},
		{[]float64{3, 1, 2}, 2, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
		{[]float64{10, 10, 1000}, 10, true},
	} {
		got, ok := Median(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Median(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Error("Median sorted its argument")
	}
	if s, ok := Spread([]float64{80, 100, 120}); !ok || math.Abs(s-0.4) > 1e-9 {
		t.Errorf("Spread = %v, %v; want 0.4", s, ok)
	}
	if _, ok := Spread([]float64{1}); ok {
		t.Error("Spread of one value is ok")
	}
}

func TestGrouping(t *testing.T) {
	d := parse(t)
	if d.Meta == nil || d.Meta.NProc != 2 || d.Meta.CPU != "Test CPU" {
		t.Fatalf("meta = %+v", d.Meta)
	}
	if n := d.Rounds(); n != 3 {
		t.Errorf("Rounds = %d, want 3", n)
	}
	// The line without "server" joins switchboard's group by its protocol.
	g := d.Groups[Key{ServerSwitchboard, "relay-200"}]
	if g == nil || len(g.Runs) != 3 {
		t.Fatalf("switchboard relay-200 = %+v, want 3 runs", g)
	}
	if v, _ := d.Median(ServerSwitchboard, "relay-200", MsgPerSec); v != 80000 {
		t.Errorf("switchboard median = %v, want 80000", v)
	}
	// The failed run is kept apart and out of the median.
	pj := d.Groups[Key{ServerPeerJS, "relay-200"}]
	if len(pj.Runs) != 2 || len(pj.Failed) != 1 {
		t.Errorf("peerjs relay-200: %d runs, %d failed; want 2, 1", len(pj.Runs), len(pj.Failed))
	}
	if v, _ := d.Median(ServerPeerJS, "relay-200", MsgPerSec); v != 35000 {
		t.Errorf("peerjs median = %v, want 35000", v)
	}
	if d.Groups[Key{ServerSwitchboard, "latency-2000"}] == nil {
		t.Error("no latency-2000 group")
	}
	if v, _ := d.Median(ServerSwitchboard, "latency-2000", LatencyP("p99")); v != 1.2 {
		t.Errorf("p99 median = %v, want 1.2", v)
	}
	if v, _ := d.Median(ServerPeerJS, "relay-200", ServerCPUPer); math.Abs(v-10) > 1e-9 {
		t.Errorf("peerjs CPU per message = %v µs, want 10", v)
	}
	if v, ok := d.Median(ServerLongPoll, "relay-200", ServerCPUPer); ok {
		t.Errorf("long-poll CPU per message = %v without CPU figures", v)
	}
	// Memory that was not read gives no value.
	if _, ok := d.Median(ServerBareRelay, "idle", BytesConn); ok {
		t.Error("bare relay idle memory has a value")
	}
	want := []string{ServerSwitchboard, ServerLongPoll, ServerPeerJS, ServerBareRelay}
	if got := d.Servers(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Servers = %v, want %v", got, want)
	}
}

func TestTargets(t *testing.T) {
	d := parse(t)
	byName := map[string]Target{}
	for _, tg := range Targets(d) {
		byName[tg.Name] = tg
	}
	for _, c := range []struct {
		name   string
		have   bool
		value  float64
		met    bool
		margin string
	}{
		// 80,000 ÷ 35,000
		{"Relay msg/s, 200 B: WebSocket ÷ PeerJS", true, 80000.0 / 35000, true, "14% above"},
		// 80,000 ÷ 90,000
		{"Relay msg/s, 200 B: WebSocket ÷ bare relay", true, 80000.0 / 90000, false, "1% short"},
		{"Relay msg/s, 1,500 B: WebSocket ÷ PeerJS", false, 0, false, "no data"},
		{"Latency p99 at 2,000 msg/s", true, 1.2, false, "0.20 ms (20%) over"},
		{"Latency p99 at 2,000 msg/s, vs PeerJS", true, 1.2, true, "0.80 ms (40%) under"},
		{"Idle memory per connection", true, 9000, false, "0.8 KiB (10%) over"},
		{"Idle memory per connection, vs PeerJS", true, 9000, false, "1.0 KiB (12%) over"},
		// 40,000 ÷ 80,000
		{"Relay msg/s, 200 B: long-poll ÷ WebSocket", true, 0.5, true, "67% above"},
		{"Setups/s: WebSocket ÷ PeerJS", false, 0, false, "no data"},
	} {
		tg, ok := byName[c.name]
		if !ok {
			t.Errorf("no target %q", c.name)
			continue
		}
		if tg.Have != c.have || math.Abs(tg.Value-c.value) > 1e-9 || tg.Met() != c.met || tg.Margin() != c.margin {
			t.Errorf("%s: have %v value %v met %v margin %q; want %v %v %v %q",
				c.name, tg.Have, tg.Value, tg.Met(), tg.Margin(), c.have, c.value, c.met, c.margin)
		}
	}
	// A strict target is missed at equality.
	if (Target{Cmp: Below, Limit: 1, Value: 1, Have: true}).Met() {
		t.Error("1 < 1 met")
	}
	if !(Target{Cmp: AtMost, Limit: 1, Value: 1, Have: true}).Met() {
		t.Error("1 ≤ 1 missed")
	}
}

func TestRender(t *testing.T) {
	d := parse(t)
	d.Source = "r.jsonl"
	out := Render(d)
	for _, want := range []string{
		"- Run: 2026-01-02 03:04 UTC",
		"`nproc` = 2, Test CPU",
		"`ROUNDS=3 bench/compare.sh`",
		"| Switchboard, WebSocket | 80,000 | 25% |",
		"| PeerJS 1.0.2 | 35,000 |",
		"| Switchboard, WebSocket | 5.0 | 10.0 | 68% | — | — | — |",
		"| Switchboard, long-poll | 40,000 |  | — |  | — | 0 |",
		"| Switchboard, long-poll | n/a | n/a | n/a | — | — | — |",
		"The load generator used 67% of the CPU time that it and the server used in the relay runs (median), and the two together 68% of the machine's 2 cores. The server's",
		"as a multiple of Switchboard's (WebSocket): PeerJS 1.0.2 2.00× at 200 B, bare relay 1.20× at 200 B.",
		"### Targets",
		"| Latency p99 at 2,000 msg/s | ≤ 1.00 ms | 1.20 ms | **missed** | 0.20 ms (20%) over |",
		"round 3, PeerJS 1.0.2, relay-200: **failed**: exit 1: boom",
		"first: x \\| y",
		"round 1, bare relay, idle: 90 of 100 connected; memory not read: no /metrics",
		"| relay-200 | `-workload relay -size 200` |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSplice(t *testing.T) {
	doc := "# B\n\nbefore\n" + BeginMarker + "\nold\n" + EndMarker + "\nafter\n"
	got := Splice(doc, "new")
	want := "# B\n\nbefore\n" + BeginMarker + "\nnew\n" + EndMarker + "\nafter\n"
	if got != want {
		t.Errorf("Splice replaced:\n%q\nwant\n%q", got, want)
	}
	if again := Splice(got, "new"); again != want {
		t.Errorf("Splice is not idempotent:\n%q", again)
	}
	got = Splice("", "s\n")
	if !strings.HasPrefix(got, "# Benchmarks\n") || !strings.HasSuffix(got, BeginMarker+"\ns\n"+EndMarker+"\n") {
		t.Errorf("Splice of nothing = %q", got)
	}
	got = Splice("text", "s")
	if got != "text\n\n"+BeginMarker+"\ns\n"+EndMarker+"\n" {
		t.Errorf("Splice without markers = %q", got)
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -1500: "-1,500"} {
		if got := fmtCount(v); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0.634: "0.63", 19.776: "19.8", 244.2: "244"} {
		if got := fmtMillis(v); got != want {
			t.Errorf("fmtMillis(%v) = %q, want %q", v, got, want)
		}
	}
}

// heldResults has the held cases and a base, on both transports.
const heldResults = `{"meta":{"date":"2026-01-02T03:04:05Z","nproc":2,"command":"BASE=977d422 bench/compare.sh","base":"977d422 (977d4220000)"}}
{"server":"switchboard","round":1,"case":"held-ws","workload":"idle","protocol":"switchboard","transport":"websocket","errors":0,"conns":19500,"connected":19500,"connects_per_s":6000,"rss_source":"proc","rss_after":90000000,"bytes_per_conn":3900,"delivery":{"rate":1000,"sent":5000,"latency_ms":{"count":4999,"p50":0.3,"p99":4,"p999":6,"max":9}}}
{"server":"switchboard-base","round":1,"case":"held-ws","workload":"idle","protocol":"switchboard","transport":"websocket","errors":0,"conns":19500,"connected":19500,"connects_per_s":5000,"rss_source":"proc","rss_after":120000000,"bytes_per_conn":5900,"delivery":{"rate":1000,"sent":5000,"latency_ms":{"count":5000,"p50":0.3,"p99":3,"p999":6,"max":9}}}
{"server":"switchboard-longpoll","round":1,"case":"held-lp","workload":"idle","protocol":"switchboard","transport":"longpoll","errors":0,"conns":10000,"connected":10000,"connects_per_s":3000,"rss_source":"proc","rss_after":150000000,"bytes_per_conn":20000,"delivery":{"rate":1000,"sent":5000,"latency_ms":{"count":5000,"p50":0.5,"p99":3,"p999":6,"max":9}}}
{"server":"switchboard","round":1,"case":"relay-200","workload":"relay","protocol":"switchboard","size":200,"errors":0,"messages_per_s":100000}
{"server":"switchboard-base","round":1,"case":"relay-200","workload":"relay","protocol":"switchboard","size":200,"errors":0,"messages_per_s":90000}
`

func TestHeldAndBase(t *testing.T) {
	d, err := Parse(strings.NewReader(heldResults))
	if err != nil {
		t.Fatal(err)
	}
	out := Render(d)
	for _, want := range []string{
		"### One node holding many peers",
		"| Switchboard, WebSocket | 19,500 | 6,000 | 3.8 KiB |",
		"| Switchboard base 977d422, WebSocket | 19,500 | 5,000 | 5.8 KiB |",
		"### Before and after: base 977d422 and the current code",
		"| Switchboard, WebSocket | relay-200 | msg/s | 90,000 | 100,000 | +11.1% |",
		"| Switchboard, WebSocket | held-ws | delivery p99 ms | 3.00 | 4.00 | **-33.3%** |",
		"| Held WebSocket: memory per connection | ≤ 4.0 KiB | 3.8 KiB | met |",
		"| Held long-poll: memory per session, GET waiting | ≤ 16.0 KiB | 19.5 KiB | **missed** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
