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
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
	"github.com/switchboard-rtc/switchboard/transports/origin"
)

// Node is a running broker with its transports and HTTP server.
type Node struct {
	cfg        config.Config
	log        *slog.Logger
	Broker     *broker.Broker
	http       *httpserver.Server
	transports []broker.Transport

	redis     redis.UniversalClient
	backplane *clusterredis.Backplane

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
		opts, err := cfg.TransportConfig(name)
		if err != nil {
			return nil, err
		}
		t, err := broker.NewTransport(name, opts, cfg.TransportOptions())
		if err != nil {
			return nil, err
		}
		n.transports = append(n.transports, t)
	}
	if cfg.Cluster.Enabled() {
		if err := n.joinCluster(cfg, &opts); err != nil {
			return nil, err
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_ready", Help: "1 while the node can serve (as /readyz), 0 while something it needs (Redis, say) is unreachable.",
	}, func() float64 {
		if n.ready() != nil {
			return 0
		}
		return 1
	}))
	n.Broker = broker.New(opts)
	n.http = httpserver.New(n.Broker, httpserver.Options{Addr: cfg.Listen, Files: files, Gatherer: reg, Pprof: cfg.Pprof, Ready: n.ready,
		AllowedOrigins: cfg.AllowedOrigins, Origins: origin.Policy{Public: cfg.PublicOrigins, Listen: cfg.Listen, TrustProxy: cfg.TrustProxy}}, n.transports...)
	if ice := opts.ICE; len(ice.Servers) > 0 || len(ice.TURNURLs) > 0 {
		// The TURN secret stays out of the log.
		log.Info("handing out ICE servers", "static", len(ice.Servers), "turn_urls", ice.TURNURLs, "turn_ttl", n.Broker.Options().ICE.TURNTTL)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// ready reports what keeps the node from serving: the cluster backplane, or
// a transport that can tell (the Redis transport's subscription, say).
func (n *Node) ready() error {
	if n.backplane != nil {
		if err := n.backplane.Ready(); err != nil {
			return err
		}
	}
	for _, t := range n.transports {
		if r, ok := t.(broker.ReadyChecker); ok {
			if err := r.Ready(); err != nil {
				return fmt.Errorf("%s: %w", t.Name(), err)
			}
		}
	}
	return nil
}

// joinCluster sets opts up for cluster mode: a Redis backplane and store.
func (n *Node) joinCluster(cfg config.Config, opts *broker.Options) error {
	c := cfg.Cluster
	client, err := clusterredis.ClientOptions{URL: c.RedisURL, Addrs: c.RedisAddrs, MasterName: c.MasterName}.NewClient()
	if err != nil {
		return err
	}
	ttl := c.NodeTTL
	if ttl <= 0 {
		// A dead node's peers are reported gone only once they can no longer resume.
		ttl = max(cfg.Delivery.ResumeWindow, 30*time.Second)
	}
	bp, err := clusterredis.NewBackplane(clusterredis.BackplaneOptions{Client: client, Prefix: c.Prefix, NodeTTL: ttl, Logger: n.log})
	if err != nil {
		_ = client.Close()
		return err
	}
	n.redis, n.backplane = client, bp
	opts.Backplane = bp
	opts.Store = clusterredis.NewStore(client, c.Prefix)
	if opts.NodeID == "" {
		opts.NodeID = "node-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	}
	return nil
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
		if n.backplane != nil {
			_ = n.backplane.Close()
			_ = n.redis.Close()
		}
	})
	return err
}

// Run serves cfg until ctx ends, then shuts down within cfg.ShutdownTimeout.
// Each of started, if any, is called with the listening address once the
// node serves.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, files fs.FS, started ...func(net.Addr)) error {
	n, err := New(cfg, log, files)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	n.Start(ln)
	for _, f := range started {
		f(ln.Addr())
	}
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
