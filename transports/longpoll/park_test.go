package longpoll_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/transporttest"
)

// serve serves a broker made with opts over long-polling on a loopback
// port, as a node does (httpserver's Serve, which takes parked polls'
// connections back), with polls parked after parkAfter. stop stops the
// transport, as a node's shutdown does first; the cleanup calls it too.
func serve(t *testing.T, opts broker.Options, parkAfter time.Duration) (url string, tr *longpoll.Transport, stop func()) {
	t.Helper()
	b := broker.New(opts)
	tr = longpoll.New(longpoll.Options{IdleTimeout: opts.ResumeWindow, ParkAfter: parkAfter})
	hs := httpserver.New(b, httpserver.Options{}, tr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx, b); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		stop()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := hs.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		b.Close(broker.ReasonKicked)
	})
	return "http://" + ln.Addr().String(), tr, stop
}

// TestConformanceParked runs the shared suite with every poll that waits
// parked at once.
func TestConformanceParked(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			url, _, _ := serve(t, opts, time.Nanosecond)
			return transporttest.LongPoll(url)
		},
	})
}

// waitParked waits until n polls are parked.
func waitParked(t *testing.T, tr *longpoll.Transport, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for tr.ParkedPolls() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls parked, want %d", tr.ParkedPolls(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParkedPoll: a GET that waits is parked; a message, the end of its
// wait and a newer poll each answer it, with the headers a handler would
// have written (CORS included), and the client's next request goes over
// the same connection.
func TestParkedPoll(t *testing.T) {
	url, tr, _ := serve(t, broker.Options{}, time.Millisecond)
	d := transporttest.LongPoll(url)
	a, _ := brokertest.Join(t, d, "r", "a")
	b, _ := brokertest.Join(t, d, "r", "b")
	base := url + "/v1/sessions/" + b.Session + "/messages"
	client := &http.Client{Transport: &http.Transport{}}
	var reused []bool
	// get may run on another goroutine: it reports errors in the body.
	get := func(query string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+query, nil)
		req.Header.Set("Origin", url)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			return &http.Response{}, err.Error()
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp, err.Error()
		}
		return resp, string(body)
	}

	got := make(chan string, 1)
	go func() { _, body := get("?after=1&wait=20"); got <- body }()
	waitParked(t, tr, 1)
	a.Send(`{"type":"message","to":"b","payload":"parked"}`)
	if body := <-got; !strings.Contains(body, `"parked"`) {
		t.Fatalf("parked poll answered %s", body)
	}

	start := time.Now()
	resp, body := get("?after=2&wait=1")
	if body != "[]" || resp.StatusCode != 200 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("parked poll's wait: %d %q after %v", resp.StatusCode, body, time.Since(start))
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Content-Length": "2"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get("Date") == "" {
		t.Error("no Date")
	}

	go func() { _, body := get("?after=2&wait=20"); got <- body }()
	waitParked(t, tr, 1)
	other := &http.Client{Transport: &http.Transport{}}
	if resp, err := other.Get(base + "?after=2&wait=0"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("newer poll: %v %v", resp, err)
	}
	if body := <-got; body != "[]" {
		t.Fatalf("superseded parked poll answered %s", body)
	}
	waitParked(t, tr, 0)

	if len(reused) != 3 || !reused[1] || !reused[2] {
		t.Errorf("connections reused: %v, want the first one for all three", reused)
	}
}

// TestParkedPollShutdown: shutting the transport down answers a parked poll.
func TestParkedPollShutdown(t *testing.T) {
	url, tr, stop := serve(t, broker.Options{}, time.Millisecond)
	s, _ := brokertest.Join(t, transporttest.LongPoll(url), "r", "a")
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/v1/sessions/" + s.Session + "/messages?after=1&wait=50")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- string(body)
	}()
	waitParked(t, tr, 1)
	stop()
	select {
	case body := <-got:
		if body != "[]" {
			t.Errorf("parked poll at shutdown: %q", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("parked poll not answered at shutdown")
	}
}
