// Package peercmd is the logic of the `switchboard peer` subcommand: a
// WebRTC peer on the command line. It joins a room through a Switchboard
// broker, calls a peer or answers the calls that come, opens a data channel,
// and prints one line for each thing that happens, for trying a broker out
// and for scripted end-to-end tests.
//
// Each line is an event name followed by key=value fields, values quoted
// when they hold spaces:
//
//	joined room=demo peer=alice transport=websocket peers=bob
//	offer-sent peer=bob
//	answer-received peer=bob
//	ice-state peer=bob state=connected
//	datachannel-open peer=bob label=switchboard
//	candidate-pair peer=bob local=relay/127.0.0.1:50001 remote=relay/127.0.0.1:50002
//	message-received peer=bob text="hello there"
//
// The peer uses the STUN and TURN servers the broker hands out (printed as
// an ice-servers line after joined), unless -stun names others; -relay
// allows relayed (TURN) candidates only. The candidate-pair line tells which
// candidates the connection selected: their types (host, srflx, prflx or
// relay) and addresses.
//
// The peer signals over WebSocket by default; -transport longpoll uses HTTP
// long-polling, and -transport redis the broker's Redis pub/sub transport,
// with -url naming the Redis server (redis://host:port/db) rather than the
// broker. -transport email signals by mail: -imap names the peer's own
// mailbox (imap://user:password@host:port/INBOX), -smtp its submission
// server (smtp://user:password@host:port) and -broker-address the broker's
// signaling address; -url is not used. A peer on email that calls also
// opens a hand-over channel (-hand-over), over which the call's later
// negotiation goes once it is open. Without -imap and -smtp the peer
// uses the broker's embedded mail server at its default addresses, with the
// mailbox <peer>@localhost. On email the peer gathers every ICE
// candidate before it sends its one offer or answer (-gather-all=false
// turns that off).
package peercmd

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/emailconn"   // the "email" transport
	_ "github.com/switchboard-rtc/switchboard/clients/go/redisconn" // the "redis" transport
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
	"github.com/switchboard-rtc/switchboard/internal/cli"
)

// drainTimeout bounds the wait for the data channel to send what it holds
// before the peer exits.
const drainTimeout = 2 * time.Second

// config is the parsed command line.
type config struct {
	url, room, peer, token, transport string
	call                              string
	echo                              bool
	send                              string
	gatherAll                         bool
	exitAfterMessage                  bool
	stun                              string
	relay                             bool
	loopback                          bool
	debug                             bool
	imap, smtp, brokerAddress         string
	handOver                          bool
	retry                             time.Duration
}

// Bounds of the wait between two join attempts under -retry.
const (
	retryFirst = 500 * time.Millisecond
	retryMax   = 5 * time.Second
)

// The embedded mail server's default listeners, which -transport email uses
// unless -imap and -smtp name others.
const (
	defaultIMAP = "127.0.0.1:1143"
	defaultSMTP = "127.0.0.1:2525"
)

// dialURL is the URL given to switchboard.Dial: -url, or on email the
// mailbox with the submission server and the broker's address.
func (c *config) dialURL() (string, error) {
	if c.transport != emailconn.Name {
		return c.url, nil
	}
	imapURL, smtpURL := c.imap, c.smtp
	if imapURL == "" {
		// The broker's embedded mail server, whose open accounts take any
		// password.
		local := c.peer
		if local == "" {
			local = "peer-" + strings.ToLower(rand.Text()[:10])
		}
		imapURL = (&url.URL{Scheme: "imap", User: url.UserPassword(local+"@localhost", "any"), Host: defaultIMAP, Path: "/INBOX"}).String()
	}
	if smtpURL == "" {
		smtpURL = "smtp://" + defaultSMTP
	}
	u, err := url.Parse(imapURL)
	if err != nil {
		return "", fmt.Errorf("peer: -imap: %w", err)
	}
	q := u.Query()
	q.Set("smtp", smtpURL)
	q.Set("broker", c.brokerAddress)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func parse(args []string, out io.Writer) (*config, error) {
	var c config
	fs := cli.NewFlagSet("peer", "[-room R] [-call P] [-echo] [flags]",
		"Join a room and call a peer (-call) or answer calls, over a WebRTC data channel; one line per event.", nil)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "the broker's base `URL`; with -transport redis, the broker's Redis (redis://host:port/db)")
	fs.StringVar(&c.room, "room", "demo", "the `room` to join")
	fs.StringVar(&c.peer, "peer", "", "this peer's `id` (default: the broker picks one)")
	fs.StringVar(&c.token, "token", "", "the join `token`, for a broker that needs one")
	fs.StringVar(&c.transport, "transport", "websocket", "the signaling transport: "+strings.Join(switchboard.Transports(), " or "))
	fs.StringVar(&c.call, "call", "", "call this `peer` once it is in the room (default: answer incoming calls)")
	fs.BoolVar(&c.echo, "echo", false, "send every data channel message back")
	fs.StringVar(&c.send, "send", "", "send this `text` on the data channel once it is open")
	fs.BoolVar(&c.gatherAll, "gather-all", false, "gather every ICE candidate before sending one offer or answer (for slow signaling; the default on email)")
	fs.BoolVar(&c.exitAfterMessage, "exit-after-message", false, "exit after the first data channel message received")
	fs.StringVar(&c.stun, "stun", "", "comma-separated STUN or TURN `URLs`, in place of the servers the broker hands out (default: the broker's)")
	fs.BoolVar(&c.relay, "relay", false, "use only relayed (TURN) candidates: iceTransportPolicy relay")
	fs.BoolVar(&c.loopback, "loopback", false, "use only the loopback interface, for two peers on one machine without a network")
	fs.DurationVar(&c.retry, "retry", 0, "keep trying to join for this long while the broker is unreachable or refuses (a node still starting, say), printing a join-failed line each time; 0: try once")
	fs.BoolVar(&c.debug, "debug", false, "log the signaling client and pion/webrtc to stderr")
	fs.BoolVar(&c.handOver, "hand-over", false, "when calling, carry the call's later negotiation over a data channel of its own once it is open (the default on email)")
	fs.StringVar(&c.imap, "imap", "", "with -transport email, this peer's mailbox: `URL` imap://user:password@host:port/INBOX (or imaps://); default: <peer>@localhost on the broker's embedded mail server, imap://…@127.0.0.1:1143")
	fs.StringVar(&c.smtp, "smtp", "", "with -transport email, this peer's submission server: `URL` smtp://user:password@host:port (or smtps://); default: the embedded mail server, smtp://127.0.0.1:2525")
	fs.StringVar(&c.brokerAddress, "broker-address", emailconn.DefaultBroker, "with -transport email, the broker's signaling `address`")
	if err := cli.Parse(fs, args, out); err != nil {
		return nil, err
	}
	if c.transport == emailconn.Name {
		c.gatherAll, c.handOver = true, true
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "gather-all":
				c.gatherAll = f.Value.String() == "true"
			case "hand-over":
				c.handOver = f.Value.String() == "true"
			}
		})
	}
	return &c, nil
}

// printer writes the event lines; it is safe for concurrent use.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

// line prints name followed by key=value pairs from kv.
func (p *printer) line(name string, kv ...string) {
	var b strings.Builder
	b.WriteString(name)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteByte(' ')
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(quote(kv[i+1]))
	}
	b.WriteByte('\n')
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, b.String())
}

func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\n\"=\\") || !strconv.IsPrint(firstRune(v)) {
		return strconv.Quote(v)
	}
	for _, r := range v {
		if !strconv.IsPrint(r) {
			return strconv.Quote(v)
		}
	}
	return v
}

func firstRune(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}

// Main runs the peer subcommand with args (without the subcommand's name),
// printing its event lines to stdout, until ctx ends, or with
// -exit-after-message, until the first message. It returns nil then, flag.ErrHelp
// for -h, or the error that stopped it.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parse(args, stdout)
	if err != nil {
		return err
	}
	out := &printer{w: stdout}
	logger := slog.New(slog.DiscardHandler)
	if cfg.debug {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	dialURL, err := cfg.dialURL()
	if err != nil {
		return err
	}
	opts := switchboard.Options{
		Room:      cfg.room,
		Peer:      cfg.peer,
		Token:     cfg.token,
		Transport: cfg.transport,
		// What the demo page shows beside the peer's name.
		Meta:   map[string]any{"transport": cfg.transport, "agent": "switchboard peer"},
		Logger: logger,
		OnStateChange: func(s switchboard.State) {
			switch s {
			case switchboard.StateReconnecting:
				out.line("signaling-reconnecting")
			case switchboard.StateConnected:
				out.line("signaling-resumed")
			}
		},
	}
	client, err := switchboard.Dial(ctx, dialURL, opts)
	for wait, until := retryFirst, time.Now().Add(cfg.retry); err != nil && ctx.Err() == nil && time.Now().Before(until); wait = min(2*wait, retryMax) {
		out.line("join-failed", "error", err.Error(), "retry-in", wait.String())
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		client, err = switchboard.Dial(ctx, dialURL, opts)
	}
	if err != nil {
		return fmt.Errorf("peer: joining room %s: %w", cfg.room, err)
	}
	defer client.Close()
	var others []string
	for _, p := range client.Peers() {
		others = append(others, p.Peer)
	}
	out.line("joined", "room", client.Room(), "peer", client.Peer(), "transport", cfg.transport, "peers", strings.Join(others, ","))
	if cfg.stun == "" {
		out.line("ice-servers", "urls", iceURLs(client.ICEServers()))
	}

	r := &runner{
		cfg:    cfg,
		out:    out,
		client: client,
		api:    newAPI(cfg),
		log:    logger,
		peers:  map[string]*webrtcpeer.Peer{},
		done:   make(chan struct{}),
	}
	// -stun overrides the broker's servers; without it, each call takes the
	// broker's newest (a nil list).
	for _, ice := range strings.Split(cfg.stun, ",") {
		if ice = strings.TrimSpace(ice); ice != "" {
			r.iceServers = append(r.iceServers, webrtc.ICEServer{URLs: []string{ice}})
		}
	}
	if cfg.relay {
		r.policy = webrtc.ICETransportPolicyRelay
	}
	defer r.hangupAll()

	if cfg.call != "" {
		for _, p := range client.Peers() {
			if p.Peer == cfg.call {
				r.startCall(cfg.call)
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.done:
			return nil
		case env, ok := <-client.Messages():
			if !ok {
				err := client.Err()
				out.line("signaling-closed", "err", err.Error())
				return fmt.Errorf("peer: signaling: %w", err)
			}
			r.handle(env)
		}
	}
}

func newAPI(cfg *config) *webrtc.API {
	var se webrtc.SettingEngine
	if cfg.loopback {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if !cfg.debug {
		quiet := logging.NewDefaultLoggerFactory()
		quiet.DefaultLogLevel = logging.LogLevelDisabled
		se.LoggerFactory = quiet
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// runner holds the calls of one peer command.
type runner struct {
	cfg        *config
	out        *printer
	client     *switchboard.Client
	api        *webrtc.API
	iceServers []webrtc.ICEServer // nil: the broker's
	policy     webrtc.ICETransportPolicy
	log        *slog.Logger

	mu       sync.Mutex
	peers    map[string]*webrtcpeer.Peer
	called   bool          // the -call peer has been called, and has not left since
	done     chan struct{} // closed to exit
	doneOnce sync.Once
}

// handle takes one envelope from the broker.
func (r *runner) handle(env switchboard.Envelope) {
	switch env.Type {
	case switchboard.TypePeerJoined:
		var p switchboard.PeerInfo
		_ = env.Decode(&p)
		r.out.line("peer-joined", "peer", p.Peer)
		if p.Peer == r.cfg.call {
			r.startCall(p.Peer)
		}
	case switchboard.TypePeerLeft:
		var p switchboard.PeerLeft
		_ = env.Decode(&p)
		r.out.line("peer-left", "peer", p.Peer, "reason", p.Reason)
		if peer := r.take(p.Peer); peer != nil {
			peer.Close()
		}
		if p.Peer == r.cfg.call {
			r.mu.Lock()
			r.called = false // call again when it comes back
			r.mu.Unlock()
		}
	case switchboard.TypeError:
		var pe *switchboard.Error
		if errors.As(env.Err(), &pe) {
			r.out.line("error", "code", string(pe.Code), "message", pe.Message, "ref", pe.Ref)
		}
	case switchboard.TypeMessage:
		r.out.line("room-message", "from", env.From, "payload", string(env.Payload))
	case switchboard.TypeOffer, switchboard.TypeAnswer, switchboard.TypeCandidate, switchboard.TypeBye:
		r.mu.Lock()
		peer := r.peers[env.From]
		r.mu.Unlock()
		if peer == nil {
			if env.Type != switchboard.TypeOffer {
				return // the end of a call that is gone
			}
			var err error
			if peer, err = r.newPeer(env.From); err != nil {
				r.out.line("error", "peer", env.From, "err", err.Error())
				return
			}
			r.out.line("incoming-call", "peer", env.From)
		}
		if err := peer.HandleSignal(env); err != nil {
			r.out.line("error", "peer", env.From, "err", err.Error())
		}
	}
}

// startCall calls remote, once.
func (r *runner) startCall(remote string) {
	r.mu.Lock()
	if r.called {
		r.mu.Unlock()
		return
	}
	r.called = true
	existing := r.peers[remote]
	r.mu.Unlock()
	if existing != nil {
		return // it called first
	}
	peer, err := r.newPeer(remote)
	if err != nil {
		r.out.line("error", "peer", remote, "err", err.Error())
		return
	}
	r.out.line("calling", "peer", remote)
	if err := peer.Call(); err != nil {
		r.out.line("error", "peer", remote, "err", err.Error())
	}
}

func (r *runner) newPeer(remote string) (*webrtcpeer.Peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.peers[remote]; p != nil {
		return p, nil
	}
	var peer *webrtcpeer.Peer
	ready := make(chan struct{})
	p, err := webrtcpeer.New(r.client, remote, webrtcpeer.Options{
		Configuration: webrtc.Configuration{ICEServers: r.iceServers, ICETransportPolicy: r.policy},
		API:           r.api,
		GatherAll:     r.cfg.gatherAll,
		HandOver:      r.cfg.handOver,
		Logger:        r.log,
		OnEvent: func(ev webrtcpeer.Event) {
			<-ready
			r.event(peer, ev)
		},
	})
	if err != nil {
		return nil, err
	}
	peer = p
	close(ready)
	r.peers[remote] = p
	return p, nil
}

// take removes the call with remote and returns it.
func (r *runner) take(remote string) *webrtcpeer.Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[remote]
	delete(r.peers, remote)
	return p
}

// event prints a Peer's event and acts on it.
func (r *runner) event(p *webrtcpeer.Peer, ev webrtcpeer.Event) {
	remote := ev.Remote
	switch ev.Kind {
	case webrtcpeer.EventCandidateSent, webrtcpeer.EventCandidateReceived:
		c := ev.Candidate
		if c == "" {
			c = "end-of-candidates"
		}
		r.out.line(string(ev.Kind), "peer", remote, "candidate", c)
	case webrtcpeer.EventSignalingState, webrtcpeer.EventICEState, webrtcpeer.EventConnectionState:
		r.out.line(string(ev.Kind), "peer", remote, "state", ev.State)
	case webrtcpeer.EventDataChannelOpen:
		r.out.line(string(ev.Kind), "peer", remote, "label", ev.Label)
		if local, remoteCand, ok := selectedPair(p); ok {
			r.out.line("candidate-pair", "peer", remote, "local", local, "remote", remoteCand)
		}
		if r.cfg.send != "" {
			if err := p.SendText(r.cfg.send); err != nil {
				r.out.line("error", "peer", remote, "err", err.Error())
			} else {
				r.out.line("message-sent", "peer", remote, "text", r.cfg.send)
			}
		}
	case webrtcpeer.EventDataChannelClose:
		r.out.line(string(ev.Kind), "peer", remote, "label", ev.Label)
	case webrtcpeer.EventMessage:
		r.out.line("message-received", "peer", remote, "text", string(ev.Data))
		if r.cfg.echo {
			var err error
			if ev.IsString {
				err = p.SendText(string(ev.Data))
			} else {
				err = p.Send(ev.Data)
			}
			if err != nil {
				r.out.line("error", "peer", remote, "err", err.Error())
			} else {
				r.out.line("message-sent", "peer", remote, "text", string(ev.Data), "echo", "true")
			}
		}
		if r.cfg.exitAfterMessage {
			r.doneOnce.Do(func() { close(r.done) })
		}
	case webrtcpeer.EventError:
		r.out.line("error", "peer", remote, "err", ev.Err.Error())
	case webrtcpeer.EventBye:
		r.out.line("bye", "peer", remote)
		r.take(remote)
	case webrtcpeer.EventClosed:
		r.out.line("call-closed", "peer", remote)
	default:
		r.out.line(string(ev.Kind), "peer", remote)
	}
}

// hangupAll lets each data channel send what it holds, then says bye to
// every peer and closes the calls.
func (r *runner) hangupAll() {
	r.mu.Lock()
	peers := make([]*webrtcpeer.Peer, 0, len(r.peers))
	names := make([]string, 0, len(r.peers))
	for name := range r.peers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		peers = append(peers, r.peers[name])
	}
	r.peers = map[string]*webrtcpeer.Peer{}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	for _, p := range peers {
		_ = p.Drain(ctx)
		_ = p.Hangup(ctx)
	}
}

// iceURLs lists the URLs of servers, comma-separated.
func iceURLs(servers []switchboard.ICEServer) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URLs...)
	}
	return strings.Join(urls, ",")
}

// selectedPair returns the types of the local and remote candidates of the
// pair that p's ICE transport selected ("host", "srflx", "prflx" or
// "relay"), with their addresses.
func selectedPair(p *webrtcpeer.Peer) (local, remote string, ok bool) {
	pc := p.PeerConnection()
	if pc == nil || pc.SCTP() == nil || pc.SCTP().Transport() == nil {
		return "", "", false
	}
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return "", "", false
	}
	describe := func(c *webrtc.ICECandidate) string {
		return fmt.Sprintf("%s/%s:%d", c.Typ, c.Address, c.Port)
	}
	return describe(pair.Local), describe(pair.Remote), true
}
