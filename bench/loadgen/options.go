package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/cli"
)

// Workload, protocol and transport names, as the flags take them.
const (
	WorkloadRelay   = "relay"
	WorkloadLatency = "latency"
	WorkloadSetup   = "setup"
	WorkloadIdle    = "idle"
	WorkloadConnect = "connect"

	ProtocolSwitchboard = "switchboard"
	ProtocolPeerJS      = "peerjs"
	ProtocolRaw         = "raw"

	TransportWebSocket = "websocket"
	TransportLongPoll  = "longpoll"
)

// Errors of option validation.
var (
	ErrUnknownWorkload  = errors.New("loadgen: unknown workload")
	ErrUnknownProtocol  = errors.New("loadgen: unknown protocol")
	ErrUnknownTransport = errors.New("loadgen: unknown transport")
)

// Options configures a run. The zero value of every field means its default,
// applied in one place by Run.
type Options struct {
	// Workload is relay, latency, setup, idle or connect. Default relay.
	Workload string
	// URL is the server's base URL, http(s) or ws(s); a path is a prefix
	// to the protocol's paths. Default http://127.0.0.1:8080.
	URL string
	// Transport is websocket or longpoll (switchboard only). Default
	// websocket.
	Transport string
	// Protocol is switchboard, peerjs or raw. Default switchboard.
	Protocol string
	// Duration is the measurement window. Default 10s.
	Duration time.Duration
	// Warmup runs the workload before the measurement window; for idle it
	// is how long the server settles before its memory is read. Default 1s;
	// negative means none.
	Warmup time.Duration
	// Pairs is the number of peer pairs of relay, latency and setup.
	// Default 100.
	Pairs int
	// Size is the payload size of relay and latency messages, in bytes.
	// Default 200.
	Size int
	// Rate is latency's total send rate, in messages per second. Default
	// 2000.
	Rate float64
	// Window is relay's largest number of messages in flight per pair.
	// Default 64.
	Window int
	// Conns is the number of idle connections. Default 10000.
	Conns int
	// RoomSize is the number of idle connections per room. Default 2.
	RoomSize int
	// SampleRate is, for idle, how many messages per second go to randomly
	// chosen peers, each from a peer of its room, for Duration once the
	// connections are held and their memory has been read: how fast a
	// node that holds them all still delivers. Default 0: none.
	SampleRate float64
	// SourceAddrs spreads the connections over this many local addresses,
	// 127.0.0.1 … 127.0.0.n, for a server on IPv4 loopback: one address
	// reaches one server port with at most as many connections as there
	// are ephemeral ports. Default 0 (and 1): the system's choice.
	SourceAddrs int
	// Concurrency is the number of connect workers, and of concurrent dials
	// when the other workloads connect. Default 16.
	Concurrency int
	// ServerPID is the server's process id, whose VmRSS idle reads from
	// /proc. Default 0: read process_resident_memory_bytes from the
	// server's /metrics instead.
	ServerPID int
	// PeerURL, when set, is the server that the second peer of each pair
	// (the receiver) dials, so that every message crosses from one broker
	// node to another. Default: URL.
	PeerURL string

	// MetricsURL is where idle reads the server's Prometheus metrics when
	// ServerPID is 0. Default URL with the path /metrics.
	MetricsURL string
	// Token is a Switchboard join token (a JWT for room "*"), for a broker
	// configured with a secret. Default none.
	Token string
	// PeerJSKey is the PeerJS server's API key. Default "peerjs".
	PeerJSKey string
}

// withDefaults returns o with every zero field set to its default, and
// checks the names.
func (o Options) withDefaults() (Options, error) {
	if o.Workload == "" {
		o.Workload = WorkloadRelay
	}
	if o.URL == "" {
		o.URL = "http://127.0.0.1:8080"
	}
	if o.Transport == "" {
		o.Transport = TransportWebSocket
	}
	if o.Protocol == "" {
		o.Protocol = ProtocolSwitchboard
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	} else if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Pairs <= 0 {
		o.Pairs = 100
	}
	if o.Size <= 0 {
		o.Size = 200
	}
	if o.Rate <= 0 {
		o.Rate = 2000
	}
	if o.Window <= 0 {
		o.Window = 64
	}
	if o.Conns <= 0 {
		o.Conns = 10000
	}
	if o.RoomSize <= 0 {
		o.RoomSize = 2
	}
	if o.SampleRate < 0 {
		o.SampleRate = 0
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.PeerJSKey == "" {
		o.PeerJSKey = "peerjs"
	}
	switch o.Workload {
	case WorkloadRelay, WorkloadLatency, WorkloadSetup, WorkloadIdle, WorkloadConnect:
	default:
		return o, fmt.Errorf("%w %q", ErrUnknownWorkload, o.Workload)
	}
	switch o.Protocol {
	case ProtocolSwitchboard, ProtocolPeerJS, ProtocolRaw:
	default:
		return o, fmt.Errorf("%w %q", ErrUnknownProtocol, o.Protocol)
	}
	switch o.Transport {
	case TransportWebSocket:
	case TransportLongPoll:
		if o.Protocol != ProtocolSwitchboard {
			return o, fmt.Errorf("%w %q for protocol %s", ErrUnknownTransport, o.Transport, o.Protocol)
		}
	default:
		return o, fmt.Errorf("%w %q", ErrUnknownTransport, o.Transport)
	}
	if _, err := url.Parse(o.URL); err != nil {
		return o, fmt.Errorf("loadgen: bad -url: %w", err)
	}
	return o, nil
}

// stderr receives the usage and the summary line; tests quiet it.
var stderr io.Writer = os.Stderr

// Main runs the load generator as the `switchboard bench` subcommand: it
// parses args with its own flag set, runs the workload until it is done or
// ctx ends, writes the result to stdout as one line of JSON and a summary to
// standard error. Flag errors, and -h (flag.ErrHelp), are returned as they
// are; the usage has already been printed to standard error.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	var o Options
	fs := cli.NewFlagSet("bench", "[-workload relay] [-url http://127.0.0.1:8080] [flags]",
		"Load-test a running broker (or PeerJS, or the bare relay): one line of JSON figures on stdout, a summary on stderr. "+
			"Exits 1 when the run had errors. Against a switchboard broker, lift its per-session rate limit first: SWITCHBOARD_LIMITS_RATE=-1.", nil)
	fs.StringVar(&o.Workload, "workload", WorkloadRelay, "`name`: relay, latency, setup, idle or connect")
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "server base `URL`")
	fs.StringVar(&o.Transport, "transport", TransportWebSocket, "`name`: websocket or longpoll (switchboard only)")
	fs.StringVar(&o.Protocol, "protocol", ProtocolSwitchboard, "`name`: switchboard, peerjs or raw (the bare relay)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measurement window")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "run before measuring (idle: settle time before reading memory); 0 for none")
	fs.IntVar(&o.Pairs, "pairs", 100, "peer pairs (relay, latency, setup)")
	fs.IntVar(&o.Size, "size", 200, "payload `bytes` (relay, latency)")
	fs.Float64Var(&o.Rate, "rate", 2000, "total messages per second (latency)")
	fs.IntVar(&o.Window, "window", 64, "messages in flight per pair (relay)")
	fs.IntVar(&o.Conns, "conns", 10000, "connections (idle)")
	fs.IntVar(&o.RoomSize, "room-size", 2, "connections per room (idle)")
	fs.Float64Var(&o.SampleRate, "sample-rate", 0, "messages per second to random held peers for -duration, once memory is read (idle; 0: none)")
	fs.IntVar(&o.SourceAddrs, "source-addrs", 0, "spread connections over `n` local addresses 127.0.0.1…127.0.0.n (loopback servers; 0: the system's choice)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "connect workers, and concurrent dials")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "server `pid` whose VmRSS idle reads; 0: read the server's /metrics")
	fs.StringVar(&o.PeerURL, "peer-url", "", "base `URL` of the node the receiving peer of each pair dials (cross-node runs; default: -url)")
	fs.StringVar(&o.MetricsURL, "metrics-url", "", "Prometheus metrics `URL` (idle; default: -url with path /metrics)")
	fs.StringVar(&o.Token, "token", "", "switchboard join `token` (a JWT for room \"*\")")
	fs.StringVar(&o.PeerJSKey, "peerjs-key", "peerjs", "PeerJS server API `key`")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	if o.Warmup == 0 {
		o.Warmup = -1 // the flag's 0 means none; the field's 0 means default
	}
	res, err := Run(ctx, o)
	if err != nil {
		return err
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	fmt.Fprintln(stderr, res.Summary())
	if res.Errors > 0 {
		return fmt.Errorf("%w: %d of them; %s", ErrRunErrors, res.Errors, res.errorHint())
	}
	return nil
}

// ErrRunErrors is returned by Main when the run counted errors; the
// result, with its error_kinds, has been printed.
var ErrRunErrors = errors.New("bench: the run had errors")

// Run runs the workload o describes until it is done or ctx ends, and
// returns its result. It raises the process's open-file limit to its hard
// limit first, since every simulated peer holds a connection.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	raiseFileLimit()
	d, err := NewDriver(o)
	if err != nil {
		return nil, err
	}
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	}
	r := newRun(o, d)
	r.peerD = d
	if o.PeerURL != "" {
		po := o
		po.URL = o.PeerURL
		if r.peerD, err = NewDriver(po); err != nil {
			return nil, err
		}
		if c, ok := r.peerD.(io.Closer); ok {
			defer c.Close()
		}
	}
	var res *Result
	switch o.Workload {
	case WorkloadRelay:
		res, err = r.relay(ctx)
	case WorkloadLatency:
		res, err = r.latency(ctx)
	case WorkloadSetup:
		res, err = r.setup(ctx)
	case WorkloadIdle:
		res, err = r.idle(ctx)
	case WorkloadConnect:
		res, err = r.connect(ctx)
	}
	if err != nil {
		return nil, err
	}
	res.round()
	return res, nil
}

// httpBase returns u as an http(s) URL without a trailing slash.
func httpBase(u string) (*url.URL, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch p.Scheme {
	case "ws":
		p.Scheme = "http"
	case "wss":
		p.Scheme = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("loadgen: URL %q: scheme must be http, https, ws or wss", u)
	}
	p.Path = strings.TrimSuffix(p.Path, "/")
	p.RawQuery, p.Fragment = "", ""
	return p, nil
}

// wsBase returns u as a ws(s) URL without a trailing slash.
func wsBase(u string) (*url.URL, error) {
	p, err := httpBase(u)
	if err != nil {
		return nil, err
	}
	if p.Scheme == "https" {
		p.Scheme = "wss"
	} else {
		p.Scheme = "ws"
	}
	return p, nil
}
