package loadgen

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram layout: values in microseconds, exact below 2^histSubBits*2 and
// log-linear above, with 2^histSubBits buckets per power of two, so a
// bucket's width is under 1/128 of its values (0.8%).
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	// histMaxExp bounds the values kept exactly in range: up to about
	// 2^38 µs (three days); larger ones land in the last bucket.
	histMaxExp  = 38 - histSubBits
	histBuckets = (histMaxExp+1)*histSub + histSub
)

// histogram records durations with bounded memory and error. It is safe for
// concurrent use.
type histogram struct {
	mu     sync.Mutex
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // µs
	max    uint64  // µs, exact
}

// bucketOf returns the bucket of v µs.
func bucketOf(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	return e*histSub + int(v>>e)
}

// bucketMid returns the middle of bucket i's values, in µs.
func bucketMid(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	e := i/histSub - 1
	lo := uint64(i-e*histSub) << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

// record adds one duration; negative ones count as zero.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0) / time.Microsecond)
	h.mu.Lock()
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
	h.mu.Unlock()
}

// LatencyStats summarises a distribution of durations, in milliseconds.
type LatencyStats struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// stats returns the histogram's summary.
func (h *histogram) stats() *LatencyStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &LatencyStats{Count: int64(h.n)}
	if h.n == 0 {
		return s
	}
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	s.Mean = ms(h.sum / float64(h.n))
	s.Max = ms(float64(h.max))
	s.P50 = ms(h.quantile(0.50))
	s.P90 = ms(h.quantile(0.90))
	s.P99 = ms(h.quantile(0.99))
	s.P999 = ms(h.quantile(0.999))
	return s
}

// quantile returns the value below which a fraction q of the values lie, in
// µs, never above the maximum. h.mu must be held.
func (h *histogram) quantile(q float64) float64 {
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketMid(i), float64(h.max))
		}
	}
	return float64(h.max)
}
