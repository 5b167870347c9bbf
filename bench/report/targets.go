package main

import (
	"fmt"
	"math"
	"strconv"
)

// Comparison is how a target compares a measured value with its limit.
type Comparison int

const (
	AtLeast Comparison = iota // value ≥ limit
	AtMost                    // value ≤ limit
	Below                     // value < limit
)

func (c Comparison) String() string {
	switch c {
	case AtLeast:
		return "≥"
	case AtMost:
		return "≤"
	}
	return "<"
}

// Unit is what a target's value and limit are in.
type Unit int

const (
	Ratio  Unit = iota // a ratio of two medians
	Millis             // milliseconds
	Bytes              // bytes
	Count              // a count, or a count per second
)

// Target is one goal Switchboard is held to, and what was measured.
type Target struct {
	Name  string
	Cmp   Comparison
	Unit  Unit
	Limit float64
	// LimitText names the limit when it is another server's figure (e.g.
	// "PeerJS's"); empty for a fixed limit.
	LimitText string
	// Value is the measured figure; Have is false when it could not be
	// computed (a server or case missing, or failed in every round).
	Value float64
	Have  bool
	// Detail shows where the value comes from, e.g. "81,200 ÷ 31,100".
	Detail string
}

// Met reports whether the target was met; false without a value.
func (t Target) Met() bool {
	if !t.Have {
		return false
	}
	switch t.Cmp {
	case AtLeast:
		return t.Value >= t.Limit
	case AtMost:
		return t.Value <= t.Limit
	}
	return t.Value < t.Limit
}

// Margin says by how much the target was met or missed: the difference from
// the limit, absolute (except for ratios) and relative to the limit.
func (t Target) Margin() string {
	if !t.Have {
		return "no data"
	}
	diff := t.Value - t.Limit
	rel := math.Inf(1)
	if t.Limit != 0 {
		rel = math.Abs(diff / t.Limit)
	}
	var word string
	switch {
	case t.Cmp == AtLeast && diff >= 0:
		word = "above"
	case t.Cmp == AtLeast:
		word = "short"
	case diff <= 0:
		word = "under"
	default:
		word = "over"
	}
	pct := "∞"
	if !math.IsInf(rel, 0) {
		pct = fmt.Sprintf("%.0f%%", rel*100)
	}
	if t.Unit == Ratio {
		return fmt.Sprintf("%s %s", pct, word)
	}
	return fmt.Sprintf("%s (%s) %s", t.format(math.Abs(diff)), pct, word)
}

// format writes v in the target's unit.
func (t Target) format(v float64) string {
	switch t.Unit {
	case Millis:
		return fmtMillis(v) + " ms"
	case Bytes:
		return fmtKiB(v)
	case Count:
		return fmtCount(v)
	}
	return fmt.Sprintf("%.2f×", v)
}

// Goal returns the target as written in the table, e.g. "≥ 2×".
func (t Target) Goal() string {
	if t.LimitText != "" {
		if t.Have || t.Limit != 0 {
			return fmt.Sprintf("%s %s (%s)", t.Cmp, t.LimitText, t.format(t.Limit))
		}
		return fmt.Sprintf("%s %s", t.Cmp, t.LimitText)
	}
	if t.Unit == Ratio {
		return fmt.Sprintf("%s %s×", t.Cmp, strconv.FormatFloat(t.Limit, 'f', -1, 64))
	}
	return fmt.Sprintf("%s %s", t.Cmp, t.format(t.Limit))
}

// Measured returns the value as written in the table.
func (t Target) Measured() string {
	if !t.Have {
		return "—"
	}
	s := t.format(t.Value)
	if t.Detail != "" {
		s += " (" + t.Detail + ")"
	}
	return s
}

// Targets returns the goals the comparison checks, evaluated on d.
func Targets(d *Data) []Target {
	var ts []Target
	ratio := func(name, a, b, c string, m Metric, limit float64, format func(float64) string) {
		t := Target{Name: name, Cmp: AtLeast, Unit: Ratio, Limit: limit}
		r, va, vb, ok := d.Ratio(a, b, c, m)
		if ok {
			t.Value, t.Have = r, true
			t.Detail = format(va) + " ÷ " + format(vb)
		}
		ts = append(ts, t)
	}
	for _, size := range []string{"200", "1500"} {
		ratio("Relay msg/s, "+fmtSize(size)+": WebSocket ÷ PeerJS",
			ServerSwitchboard, ServerPeerJS, "relay-"+size, MsgPerSec, 2, fmtCount)
	}
	for _, size := range []string{"200", "1500"} {
		ratio("Relay msg/s, "+fmtSize(size)+": WebSocket ÷ bare relay",
			ServerSwitchboard, ServerBareRelay, "relay-"+size, MsgPerSec, 0.9, fmtCount)
	}

	p99 := LatencyP("p99")
	sbP99, sbOK := d.Median(ServerSwitchboard, "latency-2000", p99)
	ts = append(ts, Target{Name: "Latency p99 at 2,000 msg/s", Cmp: AtMost, Unit: Millis, Limit: 1, Value: sbP99, Have: sbOK})
	pjP99, pjOK := d.Median(ServerPeerJS, "latency-2000", p99)
	ts = append(ts, Target{Name: "Latency p99 at 2,000 msg/s, vs PeerJS", Cmp: AtMost, Unit: Millis,
		Limit: pjP99, LimitText: "PeerJS's", Value: sbP99, Have: sbOK && pjOK})

	ratio("Setups/s: WebSocket ÷ PeerJS", ServerSwitchboard, ServerPeerJS, "setup", SetupsPS, 2, fmtCount)

	sbIdle, sbIdleOK := d.Median(ServerSwitchboard, "idle", BytesConn)
	ts = append(ts, Target{Name: "Idle memory per connection", Cmp: AtMost, Unit: Bytes, Limit: 8 << 10, Value: sbIdle, Have: sbIdleOK})
	pjIdle, pjIdleOK := d.Median(ServerPeerJS, "idle", BytesConn)
	ts = append(ts, Target{Name: "Idle memory per connection, vs PeerJS", Cmp: Below, Unit: Bytes,
		Limit: pjIdle, LimitText: "PeerJS's", Value: sbIdle, Have: sbIdleOK && pjIdleOK})

	for _, size := range []string{"200", "1500"} {
		ratio("Relay msg/s, "+fmtSize(size)+": long-poll ÷ WebSocket",
			ServerLongPoll, ServerSwitchboard, "relay-"+size, MsgPerSec, 0.3, fmtCount)
	}

	// One node's scale (issue #15), where the run had the held cases.
	fixed := func(name, server, c string, m Metric, cmp Comparison, unit Unit, limit float64) {
		if d.Groups[Key{server, c}] == nil {
			return
		}
		v, ok := d.Median(server, c, m)
		ts = append(ts, Target{Name: name, Cmp: cmp, Unit: unit, Limit: limit, Value: v, Have: ok})
	}
	fixed("Held WebSocket connections on one node", ServerSwitchboard, "held-ws", ConnectedN, AtLeast, Count, 19500)
	fixed("Held WebSocket: memory per connection", ServerSwitchboard, "held-ws", BytesConn, AtMost, Bytes, 4<<10)
	fixed("Held WebSocket: connects/s", ServerSwitchboard, "held-ws", ConnectPS, AtLeast, Count, 5000)
	fixed("Held WebSocket: delivery p99 to random peers", ServerSwitchboard, "held-ws", DeliveryP("p99"), AtMost, Millis, 5)
	fixed("Held long-poll sessions on one node", ServerLongPoll, "held-lp", ConnectedN, AtLeast, Count, 10000)
	fixed("Held long-poll: memory per session, GET waiting", ServerLongPoll, "held-lp", BytesConn, AtMost, Bytes, 16<<10)
	fixed("Held long-poll: delivery p99 to random peers", ServerLongPoll, "held-lp", DeliveryP("p99"), AtMost, Millis, 5)
	return ts
}

// fmtSize writes a payload size given in bytes, e.g. "1,500 B".
func fmtSize(s string) string {
	var n float64
	fmt.Sscan(s, &n)
	return fmtCount(n) + " B"
}
