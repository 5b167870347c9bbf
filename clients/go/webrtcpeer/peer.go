package webrtcpeer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
)

// Signaler is what a Peer needs of its signaling client. *switchboard.Client
// implements it.
type Signaler interface {
	// Peer returns this end's peer id.
	Peer() string
	// Send sends one envelope to the broker.
	Send(ctx context.Context, env switchboard.Envelope) error
}

var _ Signaler = (*switchboard.Client)(nil)

// ICEServerSource is a Signaler that knows which STUN and TURN servers to
// use. *switchboard.Client implements it with what the broker hands out.
type ICEServerSource interface {
	ICEServers() []switchboard.ICEServer
}

var _ ICEServerSource = (*switchboard.Client)(nil)

// WebRTCICEServers converts servers to pion's.
func WebRTCICEServers(servers []switchboard.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(servers))
	for _, s := range servers {
		w := webrtc.ICEServer{URLs: s.URLs, Username: s.Username}
		if s.Credential != "" {
			w.Credential = s.Credential
		}
		out = append(out, w)
	}
	return out
}

// Role says which end of a glare gives way.
type Role int

// The roles.
const (
	// RoleAuto makes the end with the lexically smaller peer id polite.
	RoleAuto Role = iota
	// RolePolite gives way: on glare it rolls its own offer back.
	RolePolite
	// RoleImpolite stands: on glare it ignores the other end's offer.
	RoleImpolite
)

// Options configures a Peer. The zero value of every field means its
// default.
type Options struct {
	// Configuration configures the peer connection: ICE servers and
	// policies. When its ICEServers is nil, the peer connection takes the
	// Signaler's, if it is an ICEServerSource (as *switchboard.Client is,
	// with the servers and fresh credentials the broker handed out); a
	// non-nil empty list means none. Default: the Signaler's, else none, so
	// only host candidates are gathered.
	Configuration webrtc.Configuration
	// API makes the peer connection; build it with a SettingEngine to choose
	// networks and interfaces. Default: webrtc.NewAPI().
	API *webrtc.API
	// Role decides who gives way on glare. Default: RoleAuto.
	Role Role
	// GatherAll waits for ICE gathering to complete before sending an offer
	// or answer, which then holds every candidate, and sends no candidate
	// envelopes. For slow signaling, such as email. Default: off (trickle ICE).
	GatherAll bool
	// GatherTimeout bounds the wait of GatherAll: past it, the description
	// goes with the candidates gathered so far. Default: 15 s.
	GatherTimeout time.Duration
	// DataChannel is the label of the data channel that Call creates.
	// Default: "switchboard".
	DataChannel string
	// HandOver makes Call open a second data channel, labelled
	// HandOverLabel, over which the two ends carry the call's later
	// negotiation (new tracks, transceivers) once it is open, instead of the
	// broker: a slow signaling transport is then needed for the first
	// exchange only. Signals go over it only while ICE is connected: an ICE
	// restart, and a call whose connection failed, still go through the
	// broker. A Peer always takes such a channel that the other end opens;
	// GatherAll does not apply to what goes over it.
	// Default: off (on in `switchboard peer -transport email`).
	HandOver bool
	// NoICERestart turns off the ICE restart that a Peer starts when its
	// ICE connection fails. Default: restart.
	NoICERestart bool
	// SendTimeout bounds the handing of one signal to the signaling client.
	// Default: 10 s.
	SendTimeout time.Duration
	// OnEvent, if set, receives the Peer's events, one at a time and in
	// order, from a goroutine of the Peer's own. It may block, holding up
	// later events only. Default: none.
	OnEvent func(Event)
	// Logger receives the Peer's log. Default: none.
	Logger *slog.Logger
}

// HandOverLabel is the label of the data channel that carries a call's
// later negotiation (Options.HandOver; docs/protocol.md).
const HandOverLabel = "switchboard-signaling"

// Defaults of Options.
const (
	DefaultGatherTimeout = 15 * time.Second
	DefaultDataChannel   = "switchboard"
	DefaultSendTimeout   = 10 * time.Second
)

func (o *Options) init() {
	if o.API == nil {
		o.API = webrtc.NewAPI()
	}
	if o.GatherTimeout <= 0 {
		o.GatherTimeout = DefaultGatherTimeout
	}
	if o.DataChannel == "" {
		o.DataChannel = DefaultDataChannel
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// EventKind says what an Event is.
type EventKind string

// The kinds of events.
const (
	EventOfferSent         EventKind = "offer-sent"
	EventOfferReceived     EventKind = "offer-received"
	EventAnswerSent        EventKind = "answer-sent"
	EventAnswerReceived    EventKind = "answer-received"
	EventCandidateSent     EventKind = "candidate-sent"     // Candidate: the candidate, "" for the end of them
	EventCandidateReceived EventKind = "candidate-received" // Candidate: the candidate, "" for the end of them
	EventOfferIgnored      EventKind = "offer-ignored"      // glare, impolite end: the other's offer was ignored
	EventRollback          EventKind = "rollback"           // glare, polite end: its own offer was rolled back
	EventICERestart        EventKind = "ice-restart"        // an offer that restarts ICE is being made
	EventSignalingState    EventKind = "signaling-state"    // State: the new signaling state
	EventICEState          EventKind = "ice-state"          // State: the new ICE connection state
	EventConnectionState   EventKind = "connection-state"   // State: the new peer connection state
	EventDataChannelOpen   EventKind = "datachannel-open"   // Label: the channel's label
	EventDataChannelClose  EventKind = "datachannel-close"  // Label: the channel's label
	EventHandOver          EventKind = "handed-over"        // the hand-over channel is open: later signals go over it
	EventMessage           EventKind = "message"            // Label, Data, IsString
	EventBye               EventKind = "bye"                // the other end hung up; the Peer is closed
	EventError             EventKind = "error"              // Err: a negotiation step failed
	EventClosed            EventKind = "closed"             // the Peer is closed; the last event
)

// Event is something that happened to a Peer. Kind says which of the other
// fields are set.
type Event struct {
	Kind      EventKind
	Remote    string // the other end's peer id
	State     string
	Label     string
	Data      []byte
	IsString  bool
	Candidate string
	Err       error
}

// Errors of a Peer.
var (
	// ErrClosed is returned by a Peer's methods after Close.
	ErrClosed = errors.New("webrtcpeer: peer closed")
	// ErrNotOpen is returned by Send before the data channel is open.
	ErrNotOpen = errors.New("webrtcpeer: data channel not open")
	// ErrNotSignal is returned by HandleSignal for an envelope that is not
	// an offer, answer, candidate or bye.
	ErrNotSignal = errors.New("webrtcpeer: not a signaling envelope")
)

// IsSignal reports whether env is one that HandleSignal takes: an offer,
// answer, candidate or bye.
func IsSignal(env switchboard.Envelope) bool {
	switch env.Type {
	case switchboard.TypeOffer, switchboard.TypeAnswer, switchboard.TypeCandidate, switchboard.TypeBye:
		return true
	}
	return false
}

// Peer is a WebRTC peer connection with one other peer of the room, which
// negotiates over a Signaler. Make it with New and end it with Close or
// Hangup. It is safe for concurrent use.
type Peer struct {
	sig    Signaler
	remote string
	polite bool
	opts   Options
	log    *slog.Logger
	// pc is replaced, by the negotiation goroutine only, when the polite end
	// gives way on glare before the first negotiation completed.
	pc atomic.Pointer[webrtc.PeerConnection]

	// Work for the negotiation goroutine, which alone sets descriptions.
	tasksMu sync.Mutex
	tasks   []func()
	wake    chan struct{}

	// Touched only by the negotiation goroutine.
	ignoreOffer    bool
	restartPending bool
	offerRestarts  bool                      // the offer out now restarts ICE
	early          []webrtc.ICECandidateInit // received before a remote description
	channels       []string                  // labels of the data channels made here

	// Local candidates wait while a description is being made and sent,
	// so that none goes out before its description.
	candMu       sync.Mutex
	holdCands    bool
	heldCands    []*webrtc.ICECandidate
	signalSendMu sync.Mutex // orders every signal sent

	dcMu sync.Mutex
	dc   *webrtc.DataChannel // the first channel that opened
	hdc  *webrtc.DataChannel // the hand-over channel, once open

	events *eventQueue

	connectedOnce sync.Once
	connected     chan struct{}
	openOnce      sync.Once
	open          chan struct{}
	closeOnce     sync.Once
	closed        chan struct{}
	loopDone      chan struct{}
}

// New makes a Peer for a call with peer remote over sig. It negotiates
// nothing until Call is called on one end, or an offer is handed to
// HandleSignal.
func New(sig Signaler, remote string, opts Options) (*Peer, error) {
	opts.init()
	if remote == "" || remote == sig.Peer() {
		return nil, fmt.Errorf("webrtcpeer: bad remote peer %q", remote)
	}
	p := &Peer{
		sig:       sig,
		remote:    remote,
		opts:      opts,
		wake:      make(chan struct{}, 1),
		connected: make(chan struct{}),
		open:      make(chan struct{}),
		closed:    make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	switch opts.Role {
	case RolePolite:
		p.polite = true
	case RoleImpolite:
		p.polite = false
	default:
		p.polite = sig.Peer() < remote
	}
	p.log = opts.Logger.With("remote", remote, "polite", p.polite)
	pc, err := p.newPeerConnection()
	if err != nil {
		return nil, err
	}
	p.pc.Store(pc)
	p.events = newEventQueue(opts.OnEvent)
	go p.loop()
	return p, nil
}

// politeRestartDelay is how long the polite end waits for the impolite one to
// restart a failed ICE connection before it restarts it itself: when both
// restart at once, they collide.
const politeRestartDelay = 3 * time.Second

// newPeerConnection makes a peer connection whose events reach the Peer for
// as long as it is the Peer's.
func (p *Peer) newPeerConnection() (*webrtc.PeerConnection, error) {
	cfg := p.opts.Configuration
	if src, ok := p.sig.(ICEServerSource); ok && cfg.ICEServers == nil {
		// The newest credentials, for every new peer connection. An ICE
		// restart keeps the connection's servers: pion's SetConfiguration
		// races with a gathering in progress.
		cfg.ICEServers = WebRTCICEServers(src.ICEServers())
	}
	pc, err := p.opts.API.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("webrtcpeer: %w", err)
	}
	current := func() bool { return p.pc.Load() == pc }
	pc.OnNegotiationNeeded(func() {
		p.post(func() {
			if current() {
				p.negotiate()
			}
		})
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if current() {
			p.onLocalCandidate(c)
		}
	})
	pc.OnSignalingStateChange(func(s webrtc.SignalingState) {
		if current() {
			p.emit(Event{Kind: EventSignalingState, State: s.String()})
		}
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if !current() {
			return
		}
		p.emit(Event{Kind: EventICEState, State: s.String()})
		if s != webrtc.ICEConnectionStateFailed || p.opts.NoICERestart {
			return
		}
		if !p.polite {
			p.RestartICE()
			return
		}
		time.AfterFunc(politeRestartDelay, func() {
			p.post(func() {
				if current() && pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed {
					p.restartPending = true
				}
			})
		})
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if !current() {
			return
		}
		p.emit(Event{Kind: EventConnectionState, State: s.String()})
		if s == webrtc.PeerConnectionStateConnected {
			p.connectedOnce.Do(func() { close(p.connected) })
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if current() {
			p.watchDataChannel(pc, dc)
		}
	})
	return pc, nil
}

// Remote returns the other end's peer id.
func (p *Peer) Remote() string { return p.remote }

// Polite reports whether this end gives way on glare.
func (p *Peer) Polite() bool { return p.polite }

// PeerConnection returns the underlying peer connection, for adding tracks
// or reading stats. Negotiation is the Peer's: do not set descriptions on it.
//
// Before the first negotiation has completed, the polite end may replace its
// peer connection (see Peer's doc): call PeerConnection again after Connected.
func (p *Peer) PeerConnection() *webrtc.PeerConnection { return p.pc.Load() }

// Connected returns a channel that is closed once the peer connection is
// connected.
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Open returns a channel that is closed once a data channel is open.
func (p *Peer) Open() <-chan struct{} { return p.open }

// Done returns a channel that is closed once the Peer is closed.
func (p *Peer) Done() <-chan struct{} { return p.closed }

// WaitOpen waits until a data channel is open, the Peer is closed, or ctx
// ends.
func (p *Peer) WaitOpen(ctx context.Context) error {
	select {
	case <-p.open:
		return nil
	case <-p.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call starts the call: it creates the data channel, which makes this end
// send an offer. It waits for any negotiation step under way.
func (p *Peer) Call() error {
	errc := make(chan error, 1)
	p.post(func() {
		err := p.createChannel(p.opts.DataChannel)
		if err == nil && p.opts.HandOver {
			err = p.createChannel(HandOverLabel)
		}
		errc <- err
	})
	select {
	case err := <-errc:
		return err
	case <-p.closed:
		return ErrClosed
	}
}

// createChannel makes a data channel on the current peer connection.
func (p *Peer) createChannel(label string) error {
	pc := p.pc.Load()
	dc, err := pc.CreateDataChannel(label, nil)
	if err != nil {
		return fmt.Errorf("webrtcpeer: %w", err)
	}
	p.channels = append(p.channels, label)
	p.watchDataChannel(pc, dc)
	return nil
}

// RestartICE makes this end send an offer that restarts ICE, as soon as no
// other negotiation is under way.
func (p *Peer) RestartICE() {
	p.post(func() {
		p.restartPending = true
	})
}

// Send sends data on the data channel as a binary message.
func (p *Peer) Send(data []byte) error {
	dc, err := p.channel()
	if err != nil {
		return err
	}
	return dc.Send(data)
}

// SendText sends s on the data channel as a text message.
func (p *Peer) SendText(s string) error {
	dc, err := p.channel()
	if err != nil {
		return err
	}
	return dc.SendText(s)
}

func (p *Peer) channel() (*webrtc.DataChannel, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	p.dcMu.Lock()
	defer p.dcMu.Unlock()
	if p.dc == nil {
		return nil, ErrNotOpen
	}
	return p.dc, nil
}

// drainPoll is how often Drain looks at the data channel's buffer.
const drainPoll = 10 * time.Millisecond

// Drain waits until the data channel has handed everything sent on it to the
// network, so that closing then loses nothing; or until ctx ends. It returns
// at once when no channel is open.
func (p *Peer) Drain(ctx context.Context) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		p.dcMu.Lock()
		dc := p.dc
		p.dcMu.Unlock()
		if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen || dc.BufferedAmount() == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.closed:
			return ErrClosed
		}
	}
}

// HandleSignal takes an offer, answer, candidate or bye from the other end.
// It returns at once; the work is done in order on the Peer's own goroutine.
// It returns ErrNotSignal for any other envelope, and an error for one from
// another peer.
func (p *Peer) HandleSignal(env switchboard.Envelope) error {
	if env.From != "" && env.From != p.remote {
		return fmt.Errorf("webrtcpeer: signal from %q handed to the peer for %q", env.From, p.remote)
	}
	switch env.Type {
	case switchboard.TypeOffer, switchboard.TypeAnswer:
		sd, err := env.Description()
		if err != nil {
			return err
		}
		p.post(func() { p.onDescription(sd) })
	case switchboard.TypeCandidate:
		c, err := env.Candidate()
		if err != nil {
			return err
		}
		p.post(func() { p.onRemoteCandidate(c) })
	case switchboard.TypeBye:
		// At once, not after the queued work: the call is over.
		p.emit(Event{Kind: EventBye})
		go p.Close()
	default:
		return fmt.Errorf("%w: %q", ErrNotSignal, env.Type)
	}
	return nil
}

// Hangup tells the other end that the call is over (a bye), then closes the
// Peer.
func (p *Peer) Hangup(ctx context.Context) error {
	err := p.sig.Send(ctx, switchboard.Envelope{Type: switchboard.TypeBye, To: p.remote})
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the peer connection. It is idempotent, and may be called from
// OnEvent. The last event is EventClosed, which OnEvent may still be handling
// when Close returns.
func (p *Peer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		<-p.loopDone
		err = p.pc.Load().Close()
		p.emit(Event{Kind: EventClosed})
		p.events.close()
	})
	<-p.loopDone
	return err
}

// emit queues an event for OnEvent.
func (p *Peer) emit(ev Event) {
	ev.Remote = p.remote
	p.events.push(ev)
}

// post queues work for the negotiation goroutine.
func (p *Peer) post(f func()) {
	p.tasksMu.Lock()
	p.tasks = append(p.tasks, f)
	p.tasksMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// loop is the negotiation goroutine: it runs the posted work in order, so
// that no two descriptions are ever made or set at once.
func (p *Peer) loop() {
	defer close(p.loopDone)
	for {
		select {
		case <-p.closed:
			return
		case <-p.wake:
		}
		for {
			p.tasksMu.Lock()
			if len(p.tasks) == 0 {
				p.tasksMu.Unlock()
				break
			}
			f := p.tasks[0]
			p.tasks = p.tasks[1:]
			p.tasksMu.Unlock()
			select {
			case <-p.closed:
				return
			default:
			}
			f()
			if p.restartPending && p.pc.Load().SignalingState() == webrtc.SignalingStateStable {
				p.negotiate()
			}
		}
	}
}

func (p *Peer) fail(step string, err error) {
	select {
	case <-p.closed:
		return // errors of a closing connection say nothing
	default:
	}
	p.log.Warn("negotiation step failed", "step", step, "err", err)
	p.emit(Event{Kind: EventError, Err: fmt.Errorf("webrtcpeer: %s: %w", step, err)})
}

// negotiate makes and sends an offer, when the connection is stable.
func (p *Peer) negotiate() {
	pc := p.pc.Load()
	if pc.SignalingState() != webrtc.SignalingStateStable {
		return // negotiation-needed fires again once stable
	}
	restart := p.restartPending
	p.restartPending = false
	if restart {
		p.emit(Event{Kind: EventICERestart})
	}
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		p.fail("create offer", err)
		return
	}
	p.offerRestarts = restart
	p.setLocalAndSend(pc, offer)
}

// setLocalAndSend sets sd as the local description and sends it, once ICE
// gathering is complete with GatherAll.
func (p *Peer) setLocalAndSend(pc *webrtc.PeerConnection, sd webrtc.SessionDescription) {
	p.candMu.Lock()
	p.holdCands = true
	p.candMu.Unlock()
	defer p.releaseCandidates()

	var gathered <-chan struct{}
	if p.opts.GatherAll && p.handOver() == nil {
		gathered = webrtc.GatheringCompletePromise(pc)
	}
	if err := pc.SetLocalDescription(sd); err != nil {
		p.fail("set local "+sd.Type.String(), err)
		return
	}
	if gathered != nil {
		t := time.NewTimer(p.opts.GatherTimeout)
		select {
		case <-gathered:
		case <-t.C:
			p.log.Warn("ICE gathering did not complete in time; sending what was gathered")
		case <-p.closed:
			t.Stop()
			return
		}
		t.Stop()
	}
	local := pc.LocalDescription()
	if local == nil {
		return
	}
	kind, sent := switchboard.TypeOffer, EventOfferSent
	if local.Type == webrtc.SDPTypeAnswer {
		kind, sent = switchboard.TypeAnswer, EventAnswerSent
	}
	p.signalSendMu.Lock()
	defer p.signalSendMu.Unlock()
	err := p.send(kind, switchboard.SessionDescription{Type: local.Type.String(), SDP: local.SDP})
	if err != nil {
		p.fail("send "+kind, err)
		return
	}
	p.emit(Event{Kind: sent})
}

// releaseCandidates sends the local candidates held back while a
// description was made.
func (p *Peer) releaseCandidates() {
	p.candMu.Lock()
	held := p.heldCands
	p.heldCands = nil
	p.holdCands = false
	p.candMu.Unlock()
	for _, c := range held {
		p.sendCandidate(c)
	}
}

// onLocalCandidate trickles a local candidate (nil: the end of them).
func (p *Peer) onLocalCandidate(c *webrtc.ICECandidate) {
	if p.opts.GatherAll && p.handOver() == nil {
		return
	}
	p.candMu.Lock()
	if p.holdCands {
		p.heldCands = append(p.heldCands, c)
		p.candMu.Unlock()
		return
	}
	p.candMu.Unlock()
	p.sendCandidate(c)
}

func (p *Peer) sendCandidate(c *webrtc.ICECandidate) {
	var init *switchboard.ICECandidateInit
	text := ""
	if c != nil {
		j := c.ToJSON()
		init = &switchboard.ICECandidateInit{
			Candidate:        j.Candidate,
			SDPMid:           j.SDPMid,
			SDPMLineIndex:    j.SDPMLineIndex,
			UsernameFragment: j.UsernameFragment,
		}
		text = j.Candidate
	}
	p.signalSendMu.Lock()
	defer p.signalSendMu.Unlock()
	if err := p.send(switchboard.TypeCandidate, init); err != nil {
		p.fail("send candidate", err)
		return
	}
	p.emit(Event{Kind: EventCandidateSent, Candidate: text})
}

func (p *Peer) send(typ string, payload any) error {
	env := switchboard.Envelope{Type: typ, To: p.remote}
	data, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	env.Payload = data
	if hdc := p.handOver(); hdc != nil {
		frame, err := json.Marshal(handOverFrame{Type: typ, Payload: data})
		if err != nil {
			return err
		}
		if err := hdc.SendText(string(frame)); err == nil {
			return nil
		}
		// The channel is closing: the broker still carries it.
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.SendTimeout)
	defer cancel()
	return p.sig.Send(ctx, env)
}

// handOverFrame is a signal on the hand-over channel: an envelope's type
// and payload (docs/protocol.md).
type handOverFrame struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// handOver returns the open hand-over channel while ICE is connected, or
// nil. An ICE restart (pion drops the old candidate pair as soon as one
// end applies the restart) and a failed connection go through the broker.
func (p *Peer) handOver() *webrtc.DataChannel {
	switch p.pc.Load().ICEConnectionState() {
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
	default:
		return nil
	}
	p.dcMu.Lock()
	defer p.dcMu.Unlock()
	return p.hdc
}

// HandedOver reports whether the call's signals now go over its hand-over
// channel rather than the broker: the channel is open and ICE connected.
func (p *Peer) HandedOver() bool { return p.handOver() != nil }

// watchHandOver takes the hand-over channel: once open, signals go over it,
// and what comes on it is handled as a signal from the other end.
func (p *Peer) watchHandOver(pc *webrtc.PeerConnection, dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		if p.pc.Load() != pc {
			return
		}
		p.dcMu.Lock()
		p.hdc = dc
		p.dcMu.Unlock()
		p.emit(Event{Kind: EventHandOver, Label: dc.Label()})
	})
	dc.OnClose(func() {
		p.dcMu.Lock()
		if p.hdc == dc {
			p.hdc = nil
		}
		p.dcMu.Unlock()
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if p.pc.Load() != pc {
			return
		}
		var f handOverFrame
		if err := json.Unmarshal(m.Data, &f); err != nil || f.Type == "" {
			p.log.Warn("malformed frame on the hand-over channel", "err", err)
			return
		}
		if f.Type == switchboard.TypeBye {
			return // a bye goes through the broker
		}
		env := switchboard.Envelope{Type: f.Type, From: p.remote, Payload: f.Payload}
		if err := p.HandleSignal(env); err != nil {
			p.log.Warn("bad signal on the hand-over channel", "type", f.Type, "err", err)
		}
	})
}

// onDescription is the heart of perfect negotiation.
func (p *Peer) onDescription(sd switchboard.SessionDescription) {
	typ := webrtc.NewSDPType(sd.Type)
	if typ == webrtc.SDPTypeOffer {
		p.emit(Event{Kind: EventOfferReceived})
	} else {
		p.emit(Event{Kind: EventAnswerReceived})
	}
	// Everything runs on this goroutine, so an offer of ours is never
	// half made here: a collision is an offer while ours is out.
	collision := typ == webrtc.SDPTypeOffer && p.pc.Load().SignalingState() != webrtc.SignalingStateStable
	p.ignoreOffer = !p.polite && collision
	if p.ignoreOffer {
		p.emit(Event{Kind: EventOfferIgnored})
		return
	}
	if collision {
		if err := p.rollback(); err != nil {
			p.fail("rollback", err)
			return
		}
		p.emit(Event{Kind: EventRollback})
	}
	pc := p.pc.Load()
	remote := webrtc.SessionDescription{Type: typ, SDP: sd.SDP}
	if err := pc.SetRemoteDescription(remote); err != nil {
		p.fail("set remote "+sd.Type, err)
		return
	}
	for _, c := range p.early {
		if err := pc.AddICECandidate(c); err != nil {
			p.fail("add candidate", err)
		}
	}
	p.early = nil
	if typ != webrtc.SDPTypeOffer {
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		p.fail("create answer", err)
		return
	}
	p.setLocalAndSend(pc, answer)
}

// rollback takes back the offer this end has out, so that it can answer the
// other end's. pion/webrtc cannot roll a local offer back, so the Peer does
// what comes to the same:
//
//   - on a connection that has been negotiated before, it applies the other
//     end's current description again, as the answer to the offer: the
//     connection is back where it was, stable. An ICE restart that the offer
//     carried is asked for again afterwards.
//   - before the first negotiation completed, it replaces the peer connection
//     with a new one, with the same data channels: nothing was established.
func (p *Peer) rollback() error {
	pc := p.pc.Load()
	if cur := pc.CurrentRemoteDescription(); cur != nil {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: cur.SDP}); err != nil {
			return err
		}
		if p.offerRestarts {
			p.restartPending = true
		}
		return nil
	}
	fresh, err := p.newPeerConnection()
	if err != nil {
		return err
	}
	p.pc.Store(fresh)
	p.candMu.Lock()
	p.heldCands = nil // the old connection's
	p.candMu.Unlock()
	if err := pc.Close(); err != nil {
		p.log.Debug("closing the replaced peer connection", "err", err)
	}
	labels := p.channels
	p.channels = nil
	for _, label := range labels {
		if err := p.createChannel(label); err != nil {
			return err
		}
	}
	return nil
}

// onRemoteCandidate adds a candidate of the other end (nil: the end of them).
func (p *Peer) onRemoteCandidate(c *switchboard.ICECandidateInit) {
	init := webrtc.ICECandidateInit{}
	if c != nil {
		init = webrtc.ICECandidateInit{
			Candidate:        c.Candidate,
			SDPMid:           c.SDPMid,
			SDPMLineIndex:    c.SDPMLineIndex,
			UsernameFragment: c.UsernameFragment,
		}
	}
	p.emit(Event{Kind: EventCandidateReceived, Candidate: init.Candidate})
	pc := p.pc.Load()
	if pc.RemoteDescription() == nil {
		if !p.ignoreOffer {
			p.early = append(p.early, init)
		}
		return
	}
	if err := pc.AddICECandidate(init); err != nil && !p.ignoreOffer {
		p.fail("add candidate", err)
	}
}

// watchDataChannel hooks up a data channel of pc, made here or by the other
// end.
func (p *Peer) watchDataChannel(pc *webrtc.PeerConnection, dc *webrtc.DataChannel) {
	label := dc.Label()
	if label == HandOverLabel {
		p.watchHandOver(pc, dc)
		return
	}
	var openOnce sync.Once
	// opened runs on the open event, or on the first message if that comes
	// first, as it may for a channel the other end made.
	opened := func() {
		openOnce.Do(func() {
			p.dcMu.Lock()
			if p.dc == nil {
				p.dc = dc
			}
			p.dcMu.Unlock()
			p.emit(Event{Kind: EventDataChannelOpen, Label: label})
			p.openOnce.Do(func() { close(p.open) })
		})
	}
	dc.OnOpen(func() {
		if p.pc.Load() == pc {
			opened()
		}
	})
	dc.OnClose(func() {
		if p.pc.Load() != pc {
			return
		}
		p.dcMu.Lock()
		if p.dc == dc {
			p.dc = nil
		}
		p.dcMu.Unlock()
		p.emit(Event{Kind: EventDataChannelClose, Label: label})
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if p.pc.Load() != pc {
			return
		}
		opened()
		p.emit(Event{Kind: EventMessage, Label: label, Data: m.Data, IsString: m.IsString})
	})
}
