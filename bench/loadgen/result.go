package loadgen

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Result is the outcome of one run, printed as one JSON object. The fields
// common to every workload come first; the workload's own are those of the
// one embedded struct that is set.
type Result struct {
	Workload  string `json:"workload"`
	Protocol  string `json:"protocol"`
	Transport string `json:"transport"`
	URL       string `json:"url"`
	// Seconds is the length of the measurement window.
	Seconds float64 `json:"duration_s"`
	Warmup  float64 `json:"warmup_s"`
	Pairs   int     `json:"pairs,omitempty"`
	Size    int     `json:"size,omitempty"`
	// Errors counts every failure: dials, sends, receives, error messages
	// from the server, messages lost or out of order.
	Errors int64 `json:"errors"`
	// ErrorKinds breaks Errors down by kind (e.g. "dial", "server:
	// slow-consumer", "order").
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	// FirstError is the text of the first failure that had one.
	FirstError string `json:"first_error,omitempty"`

	*RelayResult
	*LatencyResult
	*SetupResult
	*IdleResult
	*ConnectResult
}

// RelayResult is the relay workload's part of a Result: messages delivered
// in the window, and their payload bytes per second.
type RelayResult struct {
	Window         int     `json:"window"`
	Messages       int64   `json:"messages"`
	MessagesPerSec float64 `json:"messages_per_s"`
	BytesPerSec    float64 `json:"bytes_per_s"`
}

// LatencyResult is the latency workload's part of a Result.
type LatencyResult struct {
	Rate float64 `json:"rate"`
	// Sent counts the messages due in the window; Latency.Count those of
	// them received.
	Sent    int64         `json:"sent"`
	Latency *LatencyStats `json:"latency_ms"`
	// SendLag is how late the load generator began sending those messages,
	// after they were due: its own pacing error, which Latency includes.
	SendLag *LatencyStats `json:"send_lag_ms"`
}

// SetupResult is the setup workload's part of a Result: setups completed in
// the window, and the time from offer to the last candidate each.
type SetupResult struct {
	Setups       int64         `json:"setups"`
	SetupsPerSec float64       `json:"setups_per_s"`
	SetupTime    *LatencyStats `json:"setup_ms"`
}

// IdleResult is the idle workload's part of a Result. Memory is in bytes;
// RSSSource says where it was read: "proc", "metrics" or "none", when it
// could not be, for the reason in RSSError. The result's duration_s is the
// time from the first dial to the second reading of memory.
type IdleResult struct {
	Conns          int     `json:"conns"`
	Connected      int     `json:"connected"`
	Dropped        int64   `json:"dropped"`
	ConnectSeconds float64 `json:"connect_s"`
	ConnectsPerSec float64 `json:"connects_per_s"`
	RSSSource      string  `json:"rss_source"`
	RSSError       string  `json:"rss_error,omitempty"`
	RSSBefore      int64   `json:"rss_before"`
	RSSAfter       int64   `json:"rss_after"`
	BytesPerConn   float64 `json:"bytes_per_conn"`
	// Delivery is the sample of messages sent while the connections were
	// held (-sample-rate); nil when none was taken.
	Delivery *DeliveryResult `json:"delivery,omitempty"`
}

// DeliveryResult is how messages to randomly chosen held peers fared: the
// rate they were sent at, how many were due in the sampling window, and
// their latency from when each was due (Latency.Count were received).
type DeliveryResult struct {
	Rate    float64       `json:"rate"`
	Sent    int64         `json:"sent"`
	Latency *LatencyStats `json:"latency_ms"`
	SendLag *LatencyStats `json:"send_lag_ms"`
}

// ConnectResult is the connect workload's part of a Result: join, welcome
// and leave cycles completed in the window, and the time from dial to
// admission each.
type ConnectResult struct {
	Concurrency  int           `json:"concurrency"`
	Cycles       int64         `json:"cycles"`
	CyclesPerSec float64       `json:"cycles_per_s"`
	ConnectTime  *LatencyStats `json:"connect_ms"`
}

// round rounds the Result's rates and times to what a reader uses.
func (r *Result) round() {
	r.Seconds = roundTo(r.Seconds, 3)
	if x := r.RelayResult; x != nil {
		x.MessagesPerSec, x.BytesPerSec = roundTo(x.MessagesPerSec, 1), roundTo(x.BytesPerSec, 0)
	}
	if x := r.SetupResult; x != nil {
		x.SetupsPerSec = roundTo(x.SetupsPerSec, 1)
	}
	if x := r.IdleResult; x != nil {
		x.ConnectSeconds, x.ConnectsPerSec = roundTo(x.ConnectSeconds, 3), roundTo(x.ConnectsPerSec, 1)
		x.BytesPerConn = roundTo(x.BytesPerConn, 0)
	}
	if x := r.ConnectResult; x != nil {
		x.CyclesPerSec = roundTo(x.CyclesPerSec, 1)
	}
}

func roundTo(v float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(v*p) / p
}

// Summary returns a one-line human reading of r.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s:", r.Workload, r.Protocol, r.Transport)
	switch {
	case r.RelayResult != nil:
		fmt.Fprintf(&b, " %d pairs, %d B: %.0f msg/s, %.2f MB/s", r.Pairs, r.Size, r.MessagesPerSec, r.BytesPerSec/1e6)
	case r.LatencyResult != nil:
		l := r.Latency
		fmt.Fprintf(&b, " %d pairs, %.0f msg/s: %d/%d received, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms",
			r.Pairs, r.Rate, l.Count, r.Sent, l.P50, l.P99, l.P999, l.Max)
		if s := r.SendLag; s != nil {
			fmt.Fprintf(&b, "; send lag p50 %.3f ms, p99 %.3f ms, max %.3f ms", s.P50, s.P99, s.Max)
		}
	case r.SetupResult != nil:
		fmt.Fprintf(&b, " %d pairs: %.0f setups/s, p50 %.2f ms, p99 %.2f ms", r.Pairs, r.SetupsPerSec, r.SetupTime.P50, r.SetupTime.P99)
	case r.IdleResult != nil:
		fmt.Fprintf(&b, " %d/%d connected at %.0f/s, %d dropped", r.Connected, r.Conns, r.ConnectsPerSec, r.Dropped)
		if r.RSSSource != "none" {
			fmt.Fprintf(&b, ", RSS %.1f → %.1f MB (%s), %.0f B/conn", float64(r.RSSBefore)/1e6, float64(r.RSSAfter)/1e6, r.RSSSource, r.BytesPerConn)
		}
		if d := r.Delivery; d != nil {
			l := d.Latency
			fmt.Fprintf(&b, "; while held, %.0f msg/s to random peers: %d/%d received, p50 %.3f ms, p99 %.3f ms, max %.3f ms",
				d.Rate, l.Count, d.Sent, l.P50, l.P99, l.Max)
		}
	case r.ConnectResult != nil:
		fmt.Fprintf(&b, " %d workers: %.0f cycles/s, p50 %.2f ms, p99 %.2f ms", r.Concurrency, r.CyclesPerSec, r.ConnectTime.P50, r.ConnectTime.P99)
	}
	fmt.Fprintf(&b, ", %d errors", r.Errors)
	if r.RateLimited() {
		fmt.Fprintf(&b, "; %s", rateLimitedHint)
	}
	return b.String()
}

// rateLimitedHint says what a rate-limited run means and how to lift the
// limit.
const rateLimitedHint = "the broker rate-limited the run (its per-session envelope rate, limits.rate, default 1000/s), " +
	"so messages were dropped and the lost and out-of-order counts follow from that: " +
	"start the broker with SWITCHBOARD_LIMITS_RATE=-1 (no limit) to measure it"

// RateLimited reports whether the server refused envelopes of the run as
// rate-limited.
func (r *Result) RateLimited() bool {
	return r.ErrorKinds["server: rate-limited"] > 0
}

// errorHint names the most frequent kinds of error, or the way out when
// the broker rate-limited the run.
func (r *Result) errorHint() string {
	if r.RateLimited() {
		return "the broker rate-limited it: SWITCHBOARD_LIMITS_RATE=-1 lifts the limit"
	}
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return r.ErrorKinds[kinds[i]] > r.ErrorKinds[kinds[j]] })
	parts := make([]string, 0, 3)
	for _, k := range kinds[:min(3, len(kinds))] {
		parts = append(parts, fmt.Sprintf("%s: %d", k, r.ErrorKinds[k]))
	}
	hint := strings.Join(parts, ", ")
	if r.FirstError != "" {
		hint += "; first: " + r.FirstError
	}
	return hint
}
