package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The markers between which compare.sh's section lives in the docs.
const (
	BeginMarker = "<!-- compare:begin -->"
	EndMarker   = "<!-- compare:end -->"
)

// intro starts a docs file that does not exist yet.
const intro = `# Benchmarks

The section between the markers below is written by ` + "`bench/compare.sh`" + `
(` + "`make compare`" + `); edit outside them.
`

// Splice returns doc with everything between the markers replaced by
// section. Without markers, they and the section are appended; an empty doc
// gets a short introduction first.
func Splice(doc, section string) string {
	if !strings.HasSuffix(section, "\n") {
		section += "\n"
	}
	block := BeginMarker + "\n" + section + EndMarker
	b := strings.Index(doc, BeginMarker)
	if b >= 0 {
		if e := strings.Index(doc[b:], EndMarker); e >= 0 {
			return doc[:b] + block + doc[b+e+len(EndMarker):]
		}
	}
	if strings.TrimSpace(doc) == "" {
		return intro + "\n" + block + "\n"
	}
	if !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	return doc + "\n" + block + "\n"
}

// serverLabel names a server in the tables.
func serverLabel(d *Data, s string) string {
	switch s {
	case ServerSwitchboard:
		return "Switchboard, WebSocket"
	case ServerLongPoll:
		return "Switchboard, long-poll"
	case ServerPeerJS:
		if d.Meta != nil && d.Meta.PeerJS != "" {
			return "PeerJS " + d.Meta.PeerJS
		}
		return "PeerJS"
	case ServerBareRelay:
		return "bare relay"
	case ServerBase:
		return "Switchboard " + baseName(d) + ", WebSocket"
	case ServerLongPollBase:
		return "Switchboard " + baseName(d) + ", long-poll"
	case ServerCluster:
		return "Switchboard cluster, one node"
	case ServerClusterAcross:
		return "Switchboard cluster, across nodes"
	case ServerClusterBase:
		return "Switchboard " + baseName(d) + " cluster, one node"
	case ServerClusterAcrossBase:
		return "Switchboard " + baseName(d) + " cluster, across nodes"
	}
	return s
}

// baseName names the base code of a base-vs-new run.
func baseName(d *Data) string {
	if d.Meta != nil && d.Meta.Base != "" {
		return "base " + strings.Fields(d.Meta.Base)[0]
	}
	return "base"
}

// Render returns the Markdown section for d.
func Render(d *Data) string {
	var b strings.Builder
	m := d.Meta
	if m == nil {
		m = &Meta{}
	}
	rounds := d.Rounds()

	b.WriteString("## Switchboard, PeerJS and a bare relay\n\n")
	fmt.Fprintf(&b, "- Run: %s\n", fmtDate(m.Date))
	fmt.Fprintf(&b, "- Machine: `nproc` = %d, %s", m.NProc, orUnknown(m.CPU))
	if m.Kernel != "" {
		fmt.Fprintf(&b, ", Linux %s", m.Kernel)
	}
	b.WriteString("\n")
	var sw []string
	if m.Go != "" {
		sw = append(sw, "Go "+strings.TrimPrefix(m.Go, "go"))
	}
	if m.Node != "" {
		sw = append(sw, "Node.js "+strings.TrimPrefix(m.Node, "v"))
	}
	if m.PeerJS != "" {
		sw = append(sw, `PeerJS server (npm package "peer") `+m.PeerJS)
	}
	if len(sw) > 0 {
		fmt.Fprintf(&b, "- Software: %s\n", strings.Join(sw, ", "))
	}
	fmt.Fprintf(&b, "- Command: `%s`\n", orUnknown(m.Command))
	if m.Base != "" {
		fmt.Fprintf(&b, "- Base: %s, built in a temporary git worktree and run beside the current code\n", m.Base)
	}
	if d.Source != "" {
		fmt.Fprintf(&b, "- Raw results: `%s`; this section is `go run ./bench/report %s`\n", d.Source, d.Source)
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "Every figure is the median of %d round%s. ", rounds, plural(rounds))
	b.WriteString("In each round the servers took turns on each workload, each run on a freshly started server, ")
	b.WriteString("so a busy moment of the machine falls on all of them alike. ")
	b.WriteString("The load generator (`switchboard bench`) and the server share the machine, over loopback. ")
	b.WriteString("*Spread* is (largest − smallest) ÷ median over the rounds; *errors* adds up the load generator's error count over the rounds, failed runs included. ")
	b.WriteString("A dash means the server does not take part in that workload.\n\n")

	relay(&b, d)
	latency(&b, d)
	setup(&b, d)
	idle(&b, d)
	connect(&b, d)
	held(&b, d)
	baseVsNew(&b, d)
	targets(&b, d)
	workloads(&b, d)
	notes(&b, d)
	return b.String()
}

// column is one column of a table: its header and its cell for a server.
type column struct {
	header string
	cell   func(s string) string
}

// table writes a table with a row for each server that ran any of cases.
func table(b *strings.Builder, d *Data, cases []string, cols []column) {
	var rows []string
	for _, s := range d.Servers() {
		for _, c := range cases {
			if d.Groups[Key{s, c}] != nil {
				rows = append(rows, s)
				break
			}
		}
	}
	if len(rows) == 0 {
		b.WriteString("No runs.\n\n")
		return
	}
	b.WriteString("| Server |")
	sep := "|---|"
	for _, c := range cols {
		b.WriteString(" " + c.header + " |")
		sep += "---:|"
	}
	b.WriteString("\n" + sep + "\n")
	for _, s := range rows {
		b.WriteString("| " + serverLabel(d, s) + " |")
		for _, c := range cols {
			b.WriteString(" " + c.cell(s) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// median returns a column of the median of m in case c.
func median(d *Data, header, c string, m Metric, format func(float64) string) column {
	return column{header, func(s string) string {
		g := d.Groups[Key{s, c}]
		switch {
		case g == nil:
			return "—"
		case len(g.Runs) == 0:
			return "failed"
		}
		v, ok := Median(g.Values(m))
		if !ok {
			return "n/a"
		}
		return format(v)
	}}
}

// spread returns a column of the spread of m in case c.
func spread(d *Data, header, c string, m Metric) column {
	return column{header, func(s string) string {
		v, ok := Spread(d.Groups[Key{s, c}].Values(m))
		if !ok {
			return ""
		}
		return fmt.Sprintf("%.0f%%", v*100)
	}}
}

// errorsCol returns a column of the errors of cases: the load generator's
// error counts added up, and the runs that failed.
func errorsCol(d *Data, cases ...string) column {
	return column{"errors", func(s string) string {
		var n int64
		failed := 0
		ran := false
		for _, c := range cases {
			g := d.Groups[Key{s, c}]
			if g == nil {
				continue
			}
			ran = true
			for _, r := range g.Runs {
				n += r.Errors
			}
			failed += len(g.Failed)
		}
		if !ran {
			return "—"
		}
		out := fmtCount(float64(n))
		if failed > 0 {
			out += fmt.Sprintf(", %d run%s failed", failed, plural(failed))
		}
		return out
	}}
}

func relay(b *strings.Builder, d *Data) {
	cases := []string{"relay-200", "relay-1500"}
	b.WriteString("### Relay\n\n")
	b.WriteString("100 pairs, each in its own room; one side sends to the other as fast as 64 messages in flight allow. Messages delivered per second.\n\n")
	table(b, d, cases, []column{
		median(d, "200 B msg/s", "relay-200", MsgPerSec, fmtCount),
		spread(d, "spread", "relay-200", MsgPerSec),
		median(d, "1,500 B msg/s", "relay-1500", MsgPerSec, fmtCount),
		spread(d, "spread", "relay-1500", MsgPerSec),
		median(d, "1,500 B MB/s", "relay-1500", func(r *Record) (float64, bool) {
			return r.BytesPerSec / 1e6, r.Workload == "relay"
		}, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }),
		errorsCol(d, cases...),
	})
	share, ok := relayMedian(d, LoadgenShare)
	if !ok {
		return
	}
	b.WriteString("CPU time per message of the server and of the load generator, in microseconds: each one's CPU time over the run ÷ (rate × (warm-up + window)); ")
	b.WriteString("and how busy the two kept the machine's cores over the run.\n\n")
	var nproc int
	if d.Meta != nil {
		nproc = d.Meta.NProc
	}
	pct := func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }
	table(b, d, cases, []column{
		median(d, "server, 200 B", "relay-200", ServerCPUPer, fmtMicros),
		median(d, "load gen., 200 B", "relay-200", LoadgenCPUPer, fmtMicros),
		median(d, "cores busy", "relay-200", Busy(nproc), pct),
		median(d, "server, 1,500 B", "relay-1500", ServerCPUPer, fmtMicros),
		median(d, "load gen., 1,500 B", "relay-1500", LoadgenCPUPer, fmtMicros),
		median(d, "cores busy", "relay-1500", Busy(nproc), pct),
	})
	fmt.Fprintf(b, "The load generator used %.0f%% of the CPU time that it and the server used in the relay runs (median)", share*100)
	if busy, ok := relayMedian(d, Busy(nproc)); ok && nproc > 0 {
		fmt.Fprintf(b, ", and the two together %.0f%% of the machine's %d cores", busy*100, nproc)
		if busy >= 0.8 {
			b.WriteString(": relay throughput here is bounded by the machine as much as by the server, ")
			b.WriteString("and a server's figure depends on what its protocol costs the load generator too, which narrows the differences between servers")
		}
	}
	b.WriteString(". The server's CPU time per message shows what each server costs. ")
	b.WriteString("Busy cores well short of all of them mean the run was held back by something else: waiting on the server, or other work on the machine.\n\n")
}

// relayMedian is the median of m over every relay run.
func relayMedian(d *Data, m Metric) (float64, bool) {
	var vs []float64
	for _, r := range d.Records {
		if v, ok := m(r); ok && r.Workload == "relay" && r.Failed == "" {
			vs = append(vs, v)
		}
	}
	return Median(vs)
}

func latency(b *strings.Builder, d *Data) {
	b.WriteString("### Latency\n\n")
	b.WriteString("100 pairs, 200 B messages at a fixed total rate, timed from when each was due to be sent to its arrival (milliseconds).\n\n")
	var cols []column
	for _, rate := range []string{"2000", "8000"} {
		c := "latency-" + rate
		r, _ := strconv.ParseFloat(rate, 64)
		at := " @ " + fmtCount(r) + "/s"
		cols = append(cols,
			median(d, "p50"+at, c, LatencyP("p50"), fmtMillis),
			median(d, "p99"+at, c, LatencyP("p99"), fmtMillis),
			median(d, "p99.9"+at, c, LatencyP("p999"), fmtMillis))
	}
	cols = append(cols, errorsCol(d, "latency-2000", "latency-8000"))
	table(b, d, []string{"latency-2000", "latency-8000"}, cols)
	sendLag(b, d)
}

// sendLag tells how late the load generator began its sends: its own error,
// which the latencies include.
func sendLag(b *strings.Builder, d *Data) {
	var parts []string
	for _, rate := range []string{"2000", "8000"} {
		var p50, p99 []float64
		for _, r := range d.Records {
			if r.Workload == "latency" && r.Failed == "" && r.SendLag != nil && r.SendLag.Count > 0 &&
				strconv.FormatFloat(r.Rate, 'f', -1, 64) == rate {
				p50, p99 = append(p50, r.SendLag.P50), append(p99, r.SendLag.P99)
			}
		}
		m50, ok50 := Median(p50)
		m99, ok99 := Median(p99)
		if ok50 && ok99 {
			r, _ := strconv.ParseFloat(rate, 64)
			parts = append(parts, fmt.Sprintf("%s ms (p50) and %s ms (p99) at %s/s", fmtMillis(m50), fmtMillis(m99), fmtCount(r)))
		}
	}
	if len(parts) == 0 {
		return
	}
	b.WriteString("The load generator sends from one thread that sleeps in the kernel until each message is due (Go's timers wake up to a millisecond late on an idle process); it began its sends ")
	b.WriteString(strings.Join(parts, ", and "))
	b.WriteString(" after they were due, over all servers' runs (median). That lag is counted in the latencies above, as part of the machine's floor.\n\n")
}

func setup(b *strings.Builder, d *Data) {
	b.WriteString("### Call setup\n\n")
	b.WriteString("100 pairs, each setting up calls over and over: an SDP-sized offer and 8 ICE candidates one way, the answer and 8 candidates back.\n\n")
	table(b, d, []string{"setup"}, []column{
		median(d, "setups/s", "setup", SetupsPS, fmtCount),
		spread(d, "spread", "setup", SetupsPS),
		median(d, "CPU µs/setup", "setup", ServerCPUPer, fmtMicros),
		median(d, "p50 ms", "setup", LatencyP("p50"), fmtMillis),
		median(d, "p99 ms", "setup", LatencyP("p99"), fmtMillis),
		errorsCol(d, "setup"),
	})
}

func idle(b *strings.Builder, d *Data) {
	conns := 0
	for _, r := range d.Records {
		if r.Workload == "idle" && r.Conns > 0 {
			conns = r.Conns
			break
		}
	}
	b.WriteString("### Idle connections\n\n")
	if conns > 0 {
		fmt.Fprintf(b, "%s connections, 2 to a room, opened 16 at a time against a freshly started server; ", fmtCount(float64(conns)))
	} else {
		b.WriteString("Many connections, 2 to a room, opened 16 at a time against a freshly started server; ")
	}
	b.WriteString("memory is the growth of the server's resident set (VmRSS) over the connections, read after they settled for a second.\n\n")
	table(b, d, []string{"idle"}, []column{
		median(d, "memory per conn", "idle", BytesConn, fmtKiB),
		spread(d, "spread", "idle", BytesConn),
		median(d, "RSS with all open", "idle", RSSAfterMB, func(v float64) string { return fmt.Sprintf("%.0f MB", v) }),
		median(d, "connects/s", "idle", ConnectPS, fmtCount),
		column{"connected (fewest)", func(s string) string {
			g := d.Groups[Key{s, "idle"}]
			if g == nil || len(g.Runs) == 0 {
				return "—"
			}
			least, of := -1, 0
			for _, r := range g.Runs {
				if least < 0 || r.Connected < least {
					least, of = r.Connected, r.Conns
				}
			}
			return fmtCount(float64(least)) + " / " + fmtCount(float64(of))
		}},
		errorsCol(d, "idle"),
	})
}

func connect(b *strings.Builder, d *Data) {
	b.WriteString("### Connect\n\n")
	b.WriteString("16 workers, each joining a room with a new peer id, waiting to be admitted and leaving, over and over.\n\n")
	table(b, d, []string{"connect"}, []column{
		median(d, "cycles/s", "connect", CyclesPS, fmtCount),
		spread(d, "spread", "connect", CyclesPS),
		median(d, "p50 ms", "connect", LatencyP("p50"), fmtMillis),
		median(d, "p99 ms", "connect", LatencyP("p99"), fmtMillis),
		errorsCol(d, "connect"),
	})
}

// heldCases are the cases of one node holding as many peers as it can.
var heldCases = []string{"held-ws", "held-lp"}

func held(b *strings.Builder, d *Data) {
	have := false
	for _, s := range d.Servers() {
		for _, c := range heldCases {
			have = have || d.Groups[Key{s, c}] != nil
		}
	}
	if !have {
		return
	}
	b.WriteString("### One node holding many peers\n\n")
	b.WriteString("The idle workload at the scale of the machine: WebSocket connections (*held-ws*) or long-poll sessions, each with a GET waiting (*held-lp*), ")
	b.WriteString("2 to a room, spread over several 127.0.0.x source addresses; memory is the growth of the server's VmRSS, read after they settled. ")
	b.WriteString("Then, while all are held, messages go at a fixed rate to randomly chosen peers, each from the other peer of its room, ")
	b.WriteString("timed from when each was due to be sent to its arrival (milliseconds); *send lag* is how late the load generator began those sends, its own error, which the latencies include.\n\n")
	for _, c := range heldCases {
		var conns int
		var rate float64
		for _, r := range d.Records {
			if r.CaseName() == c && r.Failed == "" {
				conns = r.Conns
				if r.Delivery != nil {
					rate = r.Delivery.Rate
				}
				break
			}
		}
		name := "WebSocket connections"
		if c == "held-lp" {
			name = "long-poll sessions"
		}
		at := ""
		if rate > 0 {
			at = " @ " + fmtCount(rate) + "/s"
		}
		fmt.Fprintf(b, "**%s**: %s %s.\n\n", c, fmtCount(float64(conns)), name)
		table(b, d, []string{c}, []column{
			median(d, "connected (median)", c, ConnectedN, fmtCount),
			median(d, "connects/s", c, ConnectPS, fmtCount),
			median(d, "memory per conn", c, BytesConn, fmtKiB),
			spread(d, "spread", c, BytesConn),
			median(d, "RSS with all held", c, RSSAfterMB, func(v float64) string { return fmt.Sprintf("%.0f MB", v) }),
			median(d, "p50"+at, c, DeliveryP("p50"), fmtMillis),
			median(d, "p99"+at, c, DeliveryP("p99"), fmtMillis),
			median(d, "max"+at, c, DeliveryP("max"), fmtMillis),
			median(d, "send lag p99", c, DeliveryLagP99, fmtMillis),
			median(d, "lost", c, Lost, fmtCount),
			errorsCol(d, c),
		})
	}
}

// abMetric is the figure a base-vs-new comparison takes of a case, and
// whether more is better.
type abMetric struct {
	name   string
	m      Metric
	more   bool
	format func(float64) string
}

// abMetrics returns the figures compared for case c.
func abMetrics(c string) []abMetric {
	switch {
	case strings.HasPrefix(c, "relay-"):
		return []abMetric{{"msg/s", MsgPerSec, true, fmtCount}, {"server CPU µs/msg", ServerCPUPer, false, fmtMicros}}
	case strings.HasPrefix(c, "latency-"):
		return []abMetric{{"p50 ms", LatencyP("p50"), false, fmtMillis}, {"p99 ms", LatencyP("p99"), false, fmtMillis}}
	case c == "setup":
		return []abMetric{{"setups/s", SetupsPS, true, fmtCount}, {"server CPU µs/setup", ServerCPUPer, false, fmtMicros}}
	case c == "connect":
		return []abMetric{{"cycles/s", CyclesPS, true, fmtCount}}
	case c == "idle" || strings.HasPrefix(c, "held-"):
		ms := []abMetric{{"memory per conn", BytesConn, false, fmtKiB}, {"connects/s", ConnectPS, true, fmtCount}}
		if strings.HasPrefix(c, "held-") {
			ms = append(ms, abMetric{"delivery p99 ms", DeliveryP("p99"), false, fmtMillis})
		}
		return ms
	}
	return nil
}

// baseVsNew compares every figure of the current code with the base code's,
// case by case, when the run had a base.
func baseVsNew(b *strings.Builder, d *Data) {
	type row struct{ server, c string }
	var rows []row
	for _, s := range d.Servers() {
		bs, ok := baseOf[s]
		if !ok {
			continue
		}
		for _, c := range caseOrder(d) {
			if d.Groups[Key{s, c}] != nil && d.Groups[Key{bs, c}] != nil {
				rows = append(rows, row{s, c})
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "### Before and after: %s and the current code\n\n", baseName(d))
	b.WriteString("The same workloads on the base code and on the current code, run back to back in every round. ")
	b.WriteString("*Change* is the current code's median against the base's, signed so that negative is worse; ")
	b.WriteString("a figure more than 5% worse is marked. On a machine shared with other work the rates and tail latencies swing from round to round; ")
	b.WriteString("the server's CPU time per message or setup is the steadier measure of what the code costs.\n\n")
	b.WriteString("| Server | case | figure | base | current | change | rounds (base; current) |\n|---|---|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		bs := baseOf[r.server]
		for _, m := range abMetrics(r.c) {
			vb, okB := d.Median(bs, r.c, m.m)
			vn, okN := d.Median(r.server, r.c, m.m)
			if !okB || !okN {
				continue
			}
			change := "n/a"
			if vb != 0 {
				ch := (vn - vb) / vb
				if !m.more {
					ch = -ch
				}
				change = fmt.Sprintf("%+.1f%%", ch*100)
				if ch < -0.05 {
					change = "**" + change + "**"
				}
			}
			var rounds []string
			for _, s := range []string{bs, r.server} {
				var vs []string
				for _, v := range d.Groups[Key{s, r.c}].Values(m.m) {
					vs = append(vs, m.format(v))
				}
				rounds = append(rounds, strings.Join(vs, ", "))
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", serverLabel(d, r.server), r.c, m.name,
				m.format(vb), m.format(vn), change, strings.Join(rounds, "; "))
		}
	}
	b.WriteString("\n")
}

// caseOrder returns the cases of d in the order they first ran.
func caseOrder(d *Data) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range d.Records {
		if c := r.CaseName(); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

func targets(b *strings.Builder, d *Data) {
	ts := Targets(d)
	met := 0
	for _, t := range ts {
		if t.Met() {
			met++
		}
	}
	fmt.Fprintf(b, "### Targets\n\nSwitchboard on WebSocket unless said otherwise; ratios are of medians. %d of %d met.\n\n", met, len(ts))
	b.WriteString("| Target | Goal | Measured | Result | By |\n|---|---|---|---|---|\n")
	for _, t := range ts {
		res := "**missed**"
		switch {
		case !t.Have:
			res = "no data"
		case t.Met():
			res = "met"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t.Name, t.Goal(), t.Measured(), res, t.Margin())
	}
	b.WriteString("\n")
	if share, ok := relayMedian(d, LoadgenShare); ok && share >= 0.4 {
		var parts []string
		for _, c := range []struct{ other, size string }{
			{ServerPeerJS, "200"}, {ServerPeerJS, "1500"}, {ServerBareRelay, "200"}, {ServerBareRelay, "1500"},
		} {
			if r, _, _, ok := d.Ratio(c.other, ServerSwitchboard, "relay-"+c.size, ServerCPUPer); ok {
				parts = append(parts, fmt.Sprintf("%s %.2f× at %s", serverLabel(d, c.other), r, fmtSize(c.size)))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(b, "With the load generator on the same machine (%.0f%% of the CPU time in the relay runs), the relay ratios measure the machine and what each protocol costs the load generator as much as the servers. "+
				"The server's CPU time per relayed message, as a multiple of Switchboard's (WebSocket): %s.\n\n", share*100, strings.Join(parts, ", "))
		}
	}
}

// workloads lists the load generator's flags of every case, as run.
func workloads(b *strings.Builder, d *Data) {
	flags := map[string]string{}
	var cases []string
	for _, r := range d.Records {
		c := r.CaseName()
		if _, ok := flags[c]; ok || r.Flags == "" {
			continue
		}
		f := r.Flags
		if i := strings.Index(f, " -protocol "); i >= 0 {
			f = f[:i] // the server's flags are listed below
		}
		if r.Workload == "idle" {
			f += " -server-pid PID"
		}
		flags[c] = f
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return
	}
	b.WriteString("### How each run was made\n\n")
	b.WriteString("Each run is `switchboard bench -url http://127.0.0.1:PORT` with the server's flags and the workload's:\n\n")
	b.WriteString("| Server | started as | server flags |\n|---|---|---|\n")
	starts := map[string][2]string{
		ServerSwitchboard:  {"`SWITCHBOARD_LIMITS_RATE=-1 SWITCHBOARD_LIMITS_JOIN_RATE=-1 SWITCHBOARD_LOG_LEVEL=warn switchboard serve -listen 127.0.0.1:PORT`", "`-protocol switchboard -transport websocket`"},
		ServerLongPoll:     {"the same", "`-protocol switchboard -transport longpoll`"},
		ServerBase:         {"the same, built from the base commit", "`-protocol switchboard -transport websocket`"},
		ServerLongPollBase: {"the same, built from the base commit", "`-protocol switchboard -transport longpoll`"},
		ServerPeerJS:       {"`node peerjs.js --port PORT --host 127.0.0.1 --key peerjs --path / --concurrent_limit 20000`", "`-protocol peerjs`"},
		ServerBareRelay:    {"`barerelay -addr 127.0.0.1:PORT` (`bench/barerelay/cmd`)", "`-protocol raw`"},
	}
	for _, s := range d.Servers() {
		if st, ok := starts[s]; ok {
			fmt.Fprintf(b, "| %s | %s | %s |\n", serverLabel(d, s), st[0], st[1])
		}
	}
	b.WriteString("\n| Workload | flags |\n|---|---|\n")
	for _, c := range cases {
		fmt.Fprintf(b, "| %s | `%s` |\n", c, flags[c])
	}
	b.WriteString("\n")
}

// notes lists the runs that failed or counted errors.
func notes(b *strings.Builder, d *Data) {
	var lines []string
	for _, r := range d.Records {
		where := fmt.Sprintf("round %d, %s, %s", r.Round, serverLabel(d, r.ServerName()), r.CaseName())
		switch {
		case r.Failed != "":
			lines = append(lines, fmt.Sprintf("%s: **failed**: %s", where, inline(r.Failed)))
		case r.Errors > 0:
			kinds := make([]string, 0, len(r.ErrorKinds))
			for k, n := range r.ErrorKinds {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			}
			sort.Strings(kinds)
			l := fmt.Sprintf("%s: %d error%s (%s)", where, r.Errors, plural(int(r.Errors)), inline(strings.Join(kinds, ", ")))
			if r.FirstError != "" {
				l += "; first: " + inline(r.FirstError)
			}
			lines = append(lines, l)
		case r.Workload == "idle" && (r.RSSSource == "none" || r.Connected < r.Conns):
			l := fmt.Sprintf("%s: %d of %d connected", where, r.Connected, r.Conns)
			if r.RSSSource == "none" {
				l += "; memory not read: " + inline(r.RSSError)
			}
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("### Notes\n\n")
	for _, l := range lines {
		b.WriteString("- " + l + "\n")
	}
	b.WriteString("\n")
}

// inline makes s safe in a Markdown table cell or list item.
func inline(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// fmtCount writes v rounded to a whole number, with thousands separators.
func fmtCount(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// fmtMillis writes milliseconds with the precision that matters at their
// size.
func fmtMillis(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtCount(v)
}

// fmtMicros writes microseconds.
func fmtMicros(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtCount(v)
}

// fmtKiB writes bytes in KiB.
func fmtKiB(v float64) string {
	return strconv.FormatFloat(v/1024, 'f', 1, 64) + " KiB"
}

// fmtDate writes an RFC 3339 time as "2006-01-02 15:04 UTC".
func fmtDate(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return orUnknown(s)
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
