package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// rssReader reads a server's resident memory, in bytes.
type rssReader struct {
	pid     int    // read /proc/<pid>/status when set
	metrics string // else scrape this Prometheus endpoint
}

// newRSSReader returns the reader o asks for.
func newRSSReader(o Options) (*rssReader, error) {
	if o.ServerPID > 0 {
		return &rssReader{pid: o.ServerPID}, nil
	}
	m := o.MetricsURL
	if m == "" {
		u, err := httpBase(o.URL)
		if err != nil {
			return nil, err
		}
		u.Path += "/metrics"
		m = u.String()
	}
	return &rssReader{metrics: m}, nil
}

// source names where the reader reads.
func (r *rssReader) source() string {
	if r.pid > 0 {
		return "proc"
	}
	return "metrics"
}

// read returns the current resident set size.
func (r *rssReader) read(ctx context.Context) (int64, error) {
	if r.pid > 0 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
		if err != nil {
			return 0, err
		}
		return parseVmRSS(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metrics, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("loadgen: %s: HTTP %s", r.metrics, resp.Status)
	}
	return parseRSSMetric(resp.Body)
}

// parseVmRSS returns the VmRSS line of a /proc/<pid>/status, in bytes.
func parseVmRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest)) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("loadgen: no VmRSS in /proc status")
}

// parseRSSMetric returns process_resident_memory_bytes from a Prometheus
// text exposition.
func parseRSSMetric(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			_, rest, _ = strings.Cut(rest, "}")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: process_resident_memory_bytes: %w", err)
		}
		return int64(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("loadgen: no process_resident_memory_bytes in the metrics")
}
