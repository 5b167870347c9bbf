// Package node assembles one Switchboard node from its configuration: the
// broker, the configured transports and the HTTP server, with metrics and a
// graceful shutdown.
package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/cmd/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/transports/httpserver"
)

// Node is a running broker with its transports and HTTP server.
type Node struct {
	cfg        config.Config
	log        *slog.Logger
	Broker     *broker.Broker
	http       *httpserver.Server
	transports []broker.Transport

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	once   sync.Once
}

// New builds a node from cfg; files holds the browser client and demo page
// (nil: not served). Nothing runs until Start.
func New(cfg config.Config, log *slog.Logger, files fs.FS) (*Node, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := cfg.BrokerOptions()
	opts.Logger = log
	opts.Registerer = reg
	n := &Node{cfg: cfg, log: log, errs: make(chan error, 16)}
	for _, name := range cfg.TransportNames() {
		t, err := broker.NewTransport(name, cfg.TransportDecoder(name))
		if err != nil {
			return nil, err
		}
		n.transports = append(n.transports, t)
	}
	n.Broker = broker.New(opts)
	n.http = httpserver.New(n.Broker, httpserver.Options{Addr: cfg.Listen, Files: files, Gatherer: reg, Pprof: cfg.Pprof}, n.transports...)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// Start serves on ln and runs every transport.
func (n *Node) Start(ln net.Listener) {
	for _, t := range n.transports {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := t.Run(n.ctx, n.Broker); err != nil {
				n.errs <- fmt.Errorf("transport %s: %w", t.Name(), err)
			}
		}()
	}
	go func() {
		if err := n.http.Serve(ln); err != nil {
			n.errs <- fmt.Errorf("http: %w", err)
		}
	}()
	names := make([]string, len(n.transports))
	for i, t := range n.transports {
		names[i] = t.Name()
	}
	n.log.Info("switchboard serving", "addr", ln.Addr().String(), "transports", names, "node", n.Broker.Options().NodeID)
}

// Errors reports a transport or the HTTP server failing.
func (n *Node) Errors() <-chan error { return n.errs }

// Shutdown stops admitting joins, tells connected peers (WebSocket close
// 1001, long-polls answered), stops the HTTP server and waits for the
// transports, all within ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.once.Do(func() {
		n.log.Info("shutting down")
		n.Broker.Drain()
		n.cancel()
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.New("transports did not drain in time")
		}
		if e := n.http.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
		n.Broker.Close(broker.ReasonTimeout)
	})
	return err
}

// Run serves cfg until ctx ends, then shuts down within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, files fs.FS) error {
	n, err := New(cfg, log, files)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	n.Start(ln)
	select {
	case <-ctx.Done():
	case err = <-n.Errors():
		log.Error("node failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if e := n.Shutdown(sctx); e != nil {
		log.Error("shutdown", "error", e)
		if err == nil {
			err = e
		}
	}
	log.Info("stopped", "drain", time.Since(start).Round(time.Millisecond))
	return err
}
