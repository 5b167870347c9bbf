package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Server names, as bench/compare.sh writes them in the "server" field.
const (
	ServerSwitchboard = "switchboard"
	ServerLongPoll    = "switchboard-longpoll"
	ServerPeerJS      = "peerjs"
	ServerBareRelay   = "barerelay"
	// The code of BASE (compare.sh's base-vs-new mode), run beside the
	// current code on the same workloads.
	ServerBase         = "switchboard-base"
	ServerLongPollBase = "switchboard-longpoll-base"
	// Two nodes on one redis-server: both peers of a pair on one node, and
	// each pair across the two; and the same with the base code.
	ServerCluster           = "switchboard-cluster"
	ServerClusterAcross     = "switchboard-cluster-across"
	ServerClusterBase       = "switchboard-cluster-base"
	ServerClusterAcrossBase = "switchboard-cluster-across-base"
)

// serverOrder is the order of the servers in every table; servers not
// named here follow in alphabetical order.
var serverOrder = []string{ServerSwitchboard, ServerBase, ServerLongPoll, ServerLongPollBase, ServerPeerJS, ServerBareRelay,
	ServerCluster, ServerClusterBase, ServerClusterAcross, ServerClusterAcrossBase}

// baseOf maps each server of the current code to the same server running
// the base code.
var baseOf = map[string]string{ServerSwitchboard: ServerBase, ServerLongPoll: ServerLongPollBase,
	ServerCluster: ServerClusterBase, ServerClusterAcross: ServerClusterAcrossBase}

// Meta describes the run as a whole: compare.sh writes it as the first line,
// {"meta":{…}}.
type Meta struct {
	Date     string `json:"date"`
	NProc    int    `json:"nproc"`
	CPU      string `json:"cpu"`
	Command  string `json:"command"`
	Rounds   int    `json:"rounds"`
	Duration string `json:"duration"`
	Go       string `json:"go"`
	Node     string `json:"node"`
	PeerJS   string `json:"peerjs"`
	Kernel   string `json:"kernel"`
	// Base is the git ref of the base-vs-new mode and the commit it named,
	// e.g. "977d422 (977d422…)"; empty without one.
	Base string `json:"base"`
}

// Stats is a latency distribution of the load generator, in milliseconds.
type Stats struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Record is one line: the load generator's result with compare.sh's fields
// added, or a run that failed ("failed" set, and only the fields that
// identify the run).
type Record struct {
	Meta *Meta `json:"meta,omitempty"`

	Server string `json:"server"`
	Round  int    `json:"round"`
	Case   string `json:"case"`
	Flags  string `json:"flags"`
	Failed string `json:"failed"`
	// ServerCPU and LoadgenCPU are the CPU seconds the server and the load
	// generator used over the whole run, dialing and warm-up included;
	// zero when not measured.
	// Wall is the run's length in seconds, from start to exit.
	Wall       float64 `json:"wall_s"`
	ServerCPU  float64 `json:"server_cpu_s"`
	LoadgenCPU float64 `json:"loadgen_cpu_s"`

	Seconds    float64          `json:"duration_s"`
	Warmup     float64          `json:"warmup_s"`
	Workload   string           `json:"workload"`
	Protocol   string           `json:"protocol"`
	Transport  string           `json:"transport"`
	Pairs      int              `json:"pairs"`
	Size       int              `json:"size"`
	Rate       float64          `json:"rate"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds"`
	FirstError string           `json:"first_error"`

	MessagesPerSec float64 `json:"messages_per_s"`
	BytesPerSec    float64 `json:"bytes_per_s"`

	Sent    int64  `json:"sent"`
	Latency *Stats `json:"latency_ms"`
	SendLag *Stats `json:"send_lag_ms"` // how late the load generator began each send

	SetupsPerSec float64 `json:"setups_per_s"`
	SetupTime    *Stats  `json:"setup_ms"`

	Conns          int     `json:"conns"`
	Connected      int     `json:"connected"`
	Dropped        int64   `json:"dropped"`
	ConnectsPerSec float64 `json:"connects_per_s"`
	RSSSource      string  `json:"rss_source"`
	RSSError       string  `json:"rss_error"`
	RSSBefore      int64   `json:"rss_before"`
	RSSAfter       int64   `json:"rss_after"`
	BytesPerConn   float64 `json:"bytes_per_conn"`
	// Delivery is the idle workload's sample of messages to random held
	// peers, when it took one.
	Delivery *Delivery `json:"delivery"`

	CyclesPerSec float64 `json:"cycles_per_s"`
	ConnectTime  *Stats  `json:"connect_ms"`
}

// Delivery is how messages sent to random held peers fared.
type Delivery struct {
	Rate    float64 `json:"rate"`
	Sent    int64   `json:"sent"`
	Latency *Stats  `json:"latency_ms"`
	SendLag *Stats  `json:"send_lag_ms"` // how late the load generator began each send
}

// ServerName is the record's server: the "server" field, or else what its
// protocol and transport say.
func (r *Record) ServerName() string {
	if r.Server != "" {
		return r.Server
	}
	switch r.Protocol {
	case "switchboard":
		if r.Transport == "longpoll" {
			return ServerLongPoll
		}
		return ServerSwitchboard
	case "raw":
		return ServerBareRelay
	}
	return r.Protocol
}

// CaseName is the record's case as compare.sh named it, or else its
// workload with what sets it apart: relay-<size>, latency-<rate>, or the
// workload alone.
func (r *Record) CaseName() string {
	if r.Case != "" {
		return r.Case
	}
	switch r.Workload {
	case "relay":
		return "relay-" + strconv.Itoa(r.Size)
	case "latency":
		return "latency-" + strconv.FormatFloat(r.Rate, 'f', -1, 64)
	}
	return r.Workload
}

// Key identifies a group: one server running one case, over the rounds.
type Key struct{ Server, Case string }

// Group is the records of one key: those that ran, in file order, and those
// that failed.
type Group struct {
	Runs   []*Record
	Failed []*Record
}

// Data is a parsed results file.
type Data struct {
	// Source is the results file, as named on the command line.
	Source  string
	Meta    *Meta
	Records []*Record // every run record, in file order
	Groups  map[Key]*Group
}

// Parse reads JSON lines; blank lines are skipped.
func Parse(r io.Reader) (*Data, error) {
	d := &Data{Groups: make(map[Key]*Group)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		rec := new(Record)
		if err := json.Unmarshal(line, rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if rec.Meta != nil {
			d.Meta = rec.Meta
			continue
		}
		if rec.Workload == "" {
			return nil, fmt.Errorf("line %d: no workload", n)
		}
		d.add(rec)
	}
	return d, sc.Err()
}

func (d *Data) add(rec *Record) {
	d.Records = append(d.Records, rec)
	k := Key{rec.ServerName(), rec.CaseName()}
	g := d.Groups[k]
	if g == nil {
		g = new(Group)
		d.Groups[k] = g
	}
	if rec.Failed != "" {
		g.Failed = append(g.Failed, rec)
	} else {
		g.Runs = append(g.Runs, rec)
	}
}

// Servers returns the servers of the data in table order.
func (d *Data) Servers() []string {
	seen := map[string]bool{}
	for k := range d.Groups {
		seen[k.Server] = true
	}
	var out, rest []string
	for _, s := range serverOrder {
		if seen[s] {
			out = append(out, s)
			delete(seen, s)
		}
	}
	for s := range seen {
		rest = append(rest, s)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Rounds returns the number of distinct rounds in the data.
func (d *Data) Rounds() int {
	seen := map[int]bool{}
	for _, r := range d.Records {
		seen[r.Round] = true
	}
	return len(seen)
}

// Metric extracts one figure from a record; ok is false when the record
// does not have it.
type Metric func(r *Record) (v float64, ok bool)

// Metrics of the workloads.
var (
	MsgPerSec Metric = func(r *Record) (float64, bool) { return r.MessagesPerSec, r.Workload == "relay" }
	SetupsPS  Metric = func(r *Record) (float64, bool) { return r.SetupsPerSec, r.Workload == "setup" }
	CyclesPS  Metric = func(r *Record) (float64, bool) { return r.CyclesPerSec, r.Workload == "connect" }
	ConnectPS Metric = func(r *Record) (float64, bool) { return r.ConnectsPerSec, r.Workload == "idle" }
	BytesConn Metric = func(r *Record) (float64, bool) {
		return r.BytesPerConn, r.Workload == "idle" && r.RSSSource != "none" && r.RSSSource != "" && r.Connected > 0
	}
	RSSAfterMB Metric = func(r *Record) (float64, bool) {
		return float64(r.RSSAfter) / 1e6, r.Workload == "idle" && r.RSSSource != "none" && r.RSSSource != ""
	}
	ConnectedN Metric = func(r *Record) (float64, bool) { return float64(r.Connected), r.Workload == "idle" }
)

// DeliveryP returns the metric of a percentile ("p50", "p99", "p999",
// "max") of an idle run's delivery sample.
func DeliveryP(p string) Metric {
	return func(r *Record) (float64, bool) {
		if r.Delivery == nil || r.Delivery.Latency == nil {
			return 0, false
		}
		return LatencyP(p)(&Record{Latency: r.Delivery.Latency})
	}
}

// DeliveryLagP99 is the p99 of how late the load generator began the sends
// of an idle run's delivery sample: its own error, counted in the latency.
var DeliveryLagP99 Metric = func(r *Record) (float64, bool) {
	if r.Delivery == nil || r.Delivery.SendLag == nil || r.Delivery.SendLag.Count == 0 {
		return 0, false
	}
	return r.Delivery.SendLag.P99, true
}

// Lost is the messages of an idle run's delivery sample that never
// arrived.
var Lost Metric = func(r *Record) (float64, bool) {
	if r.Delivery == nil || r.Delivery.Latency == nil {
		return 0, false
	}
	return float64(r.Delivery.Sent - r.Delivery.Latency.Count), true
}

// ServerCPUPer estimates the server's CPU time per message (relay) or per
// setup (setup), in microseconds: its CPU time over the run divided by the
// rate times the time the workload ran (warm-up and window). Dialing and
// winding down are small beside that, and counted in.
var ServerCPUPer Metric = func(r *Record) (float64, bool) {
	rate := r.MessagesPerSec
	if r.Workload == "setup" {
		rate = r.SetupsPerSec
	}
	n := rate * (r.Warmup + r.Seconds)
	if r.ServerCPU <= 0 || n <= 0 {
		return 0, false
	}
	return r.ServerCPU / n * 1e6, true
}

// LoadgenCPUPer estimates the load generator's CPU time per message or
// setup, in microseconds, as ServerCPUPer does the server's.
var LoadgenCPUPer Metric = func(r *Record) (float64, bool) {
	return ServerCPUPer(&Record{Workload: r.Workload, MessagesPerSec: r.MessagesPerSec, SetupsPerSec: r.SetupsPerSec,
		Warmup: r.Warmup, Seconds: r.Seconds, ServerCPU: r.LoadgenCPU})
}

// LoadgenShare is the load generator's share of the CPU time the two
// processes used over the run.
var LoadgenShare Metric = func(r *Record) (float64, bool) {
	t := r.ServerCPU + r.LoadgenCPU
	if r.ServerCPU <= 0 || r.LoadgenCPU <= 0 {
		return 0, false
	}
	return r.LoadgenCPU / t, true
}

// Busy is the share of the machine's CPU time (wall time × nproc) that the
// server and the load generator used over the run; nproc is the meta's.
func Busy(nproc int) Metric {
	return func(r *Record) (float64, bool) {
		if nproc <= 0 || r.Wall <= 0 || r.ServerCPU <= 0 || r.LoadgenCPU <= 0 {
			return 0, false
		}
		return (r.ServerCPU + r.LoadgenCPU) / (r.Wall * float64(nproc)), true
	}
}

// LatencyP returns the metric of a percentile ("p50", "p99", "p999") of the
// record's latency, setup time or connect time, whichever it has.
func LatencyP(p string) Metric {
	return func(r *Record) (float64, bool) {
		s := r.Latency
		if s == nil {
			s = r.SetupTime
		}
		if s == nil {
			s = r.ConnectTime
		}
		if s == nil || s.Count == 0 {
			return 0, false
		}
		switch p {
		case "p50":
			return s.P50, true
		case "p99":
			return s.P99, true
		case "p999":
			return s.P999, true
		case "max":
			return s.Max, true
		}
		return 0, false
	}
}

// Values returns m of every run of the group that has it.
func (g *Group) Values(m Metric) []float64 {
	if g == nil {
		return nil
	}
	var vs []float64
	for _, r := range g.Runs {
		if v, ok := m(r); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// Median returns the median of vs, the mean of the middle two for an even
// count; ok is false for none.
func Median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// Spread returns (max − min) ÷ median of vs: how far apart the rounds
// were; ok is false for fewer than two values or a zero median.
func Spread(vs []float64) (float64, bool) {
	m, ok := Median(vs)
	if !ok || len(vs) < 2 || m == 0 {
		return 0, false
	}
	return (slices.Max(vs) - slices.Min(vs)) / m, true
}

// Median returns the median of m over the runs of server s in case c.
func (d *Data) Median(s, c string, m Metric) (float64, bool) {
	return Median(d.Groups[Key{s, c}].Values(m))
}

// Ratio returns the ratio of the medians of m: server a over server b, in
// case c; ok is false when either is missing or b's is zero.
func (d *Data) Ratio(a, b, c string, m Metric) (r, va, vb float64, ok bool) {
	va, okA := d.Median(a, c, m)
	vb, okB := d.Median(b, c, m)
	if !okA || !okB || vb == 0 {
		return 0, va, vb, false
	}
	return va / vb, va, vb, true
}

// nproc is the number of CPUs this process may use, as nproc prints it.
func nproc() int { return runtime.NumCPU() }

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
