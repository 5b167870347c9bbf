package switchboard

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Timing of the client's own bookkeeping.
const (
	// ackEvery is how many messages the client takes before it acknowledges
	// them, at the latest.
	ackEvery = 32
	// ackInterval is how long the client waits, at most, before it
	// acknowledges what it took.
	ackInterval = time.Second
	// resendWindow is how long an envelope written on a connection that then
	// broke may be sent again after the resume. The broker drops a repeated
	// id for 60 s; past that, resending could deliver it twice.
	resendWindow = 50 * time.Second
	// maxBatch is the most envelopes written in one Send of a Conn.
	maxBatch = 32
	// maxGapResumes is how many resumes in a row may find a gap before the
	// Client gives up with ErrGap.
	maxGapResumes = 3
)

// confirmKey names the payload field of the pings that the client sends to
// learn that the broker has what it wrote before them.
const confirmKey = "switchboard_confirm"

// Client is a peer's connection to a Switchboard broker: a session in one
// room. It is made by Dial and must be closed with Close. It is safe for
// concurrent use.
//
// Received envelopes are read with Recv or from the Messages channel (one
// stream: each envelope goes to one reader). The welcome that answered the
// join is not among them; Peer, Session and Peers tell what it said.
type Client struct {
	opts    Options
	ownHTTP bool // opts.HTTPClient is the Client's own
	base    *url.URL
	dial    DialFunc
	log     *slog.Logger

	peer    string
	session string

	msgs     chan Envelope // to Recv and Messages; closed when the Client ends
	wake     chan struct{} // tells the writer there is work; capacity 1
	closeReq chan struct{} // closed by Close
	done     chan struct{} // closed when the Client has ended

	closeOnce sync.Once
	lastSeq   atomic.Uint64 // seq of the last envelope taken from the broker
	acked     atomic.Uint64 // last seq acknowledged to the broker

	mu          sync.Mutex
	peers       map[string]PeerInfo
	queue       []Envelope    // to write
	queueSpace  chan struct{} // closed when the queue shrinks
	unconfirmed []written     // written but not known to have reached the broker
	nextPing    uint64        // confirm number of the next ping
	pingOut     uint64        // confirm number of the ping awaiting its pong; 0: none
	err         error         // why the Client ended; nil while it runs

	iceMu      sync.Mutex
	ice        []ICEServer   // the newest from the broker
	iceExpires time.Time     // when their credentials expire; zero: never
	iceUpdated chan struct{} // closed when ice is replaced
	iceTimer   *time.Timer   // the next automatic refresh
	iceStopped bool          // the Client has ended: no more refreshes
}

// written is an envelope written on a connection, awaiting the pong of the
// ping with number ping.
type written struct {
	env  Envelope
	ping uint64
	at   time.Time
}

// Dial connects to the broker at url (its base URL, such as
// "http://127.0.0.1:8080"), joins opts.Room and returns the Client once the
// broker has welcomed it. A join the broker refused returns its *Error. ctx
// bounds the connecting and joining only.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	ownHTTP := opts.HTTPClient == nil
	if err := opts.init(); err != nil {
		return nil, err
	}
	base, err := parseBase(url)
	if err != nil {
		return nil, err
	}
	dial, err := lookupTransport(opts.Transport)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:       opts,
		ownHTTP:    ownHTTP,
		base:       base,
		dial:       dial,
		peer:       opts.Peer,
		msgs:       make(chan Envelope, opts.ReceiveBuffer),
		wake:       make(chan struct{}, 1),
		closeReq:   make(chan struct{}),
		done:       make(chan struct{}),
		peers:      map[string]PeerInfo{},
		queueSpace: make(chan struct{}),
		nextPing:   1,
		iceUpdated: make(chan struct{}),
	}
	c.log = opts.Logger.With("room", opts.Room, "transport", opts.Transport)
	dctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	conn, welcome, err := dial(dctx, base, c.joinEnvelope(false), &c.opts)
	if err != nil {
		return nil, err
	}
	var w Welcome
	if err := welcome.Decode(&w); err != nil || w.Peer == "" || w.Session == "" {
		conn.Close(true)
		return nil, fmt.Errorf("switchboard: malformed welcome: %s", welcome.Payload)
	}
	c.peer, c.session = w.Peer, w.Session
	c.setICE(welcome.Payload)
	for _, p := range w.Peers {
		c.peers[p.Peer] = p
	}
	c.lastSeq.Store(welcome.Seq)
	c.acked.Store(welcome.Seq)
	c.log = c.log.With("peer", c.peer)
	c.log.Debug("joined", "peers", len(w.Peers))
	go c.run(conn)
	return c, nil
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("switchboard: broker URL: %w", err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("switchboard: broker URL %q has no host", s)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
		u.RawQuery = "" // a transport of another scheme (redis://…?prefix=) reads its query
	}
	u.Fragment = ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// joinEnvelope is the join for a first connection, or with resume set, for
// resuming the session.
func (c *Client) joinEnvelope(resume bool) Envelope {
	p := joinPayload{Peer: c.peer, Token: c.opts.Token, Meta: c.opts.Meta}
	if resume {
		p.Resume = &resumeInfo{Session: c.session, LastSeq: c.lastSeq.Load()}
	}
	payload, _ := json.Marshal(p)
	return Envelope{V: Version, Type: TypeJoin, ID: newID(), Room: c.opts.Room, Payload: payload}
}

// newID returns a random envelope id.
func newID() string { return cryptorand.Text() }

// Peer returns this peer's id in the room.
func (c *Client) Peer() string { return c.peer }

// Room returns the room the Client joined.
func (c *Client) Room() string { return c.opts.Room }

// Session returns the session's id. It is a secret: whoever has it can
// resume the session. It stays the same across resumes.
func (c *Client) Session() string { return c.session }

// Peers returns the other peers now in the room, sorted by id. It is kept
// current from the peer-joined and peer-left envelopes as they are received.
func (c *Client) Peers() []PeerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PeerInfo, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

// Messages returns the channel of received envelopes, in seq order. It is
// closed when the Client ends; Err then tells why.
func (c *Client) Messages() <-chan Envelope { return c.msgs }

// Recv returns the next received envelope. It blocks until there is one, ctx
// ends, or the Client ends; after the Client has ended and every received
// envelope was taken, it returns the error that ended it (ErrClosed after
// Close).
func (c *Client) Recv(ctx context.Context) (Envelope, error) {
	select {
	case env, ok := <-c.msgs:
		if !ok {
			return Envelope{}, c.endErr()
		}
		return env, nil
	case <-ctx.Done():
		return Envelope{}, ctx.Err()
	}
}

// Done returns a channel that is closed when the Client has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the Client runs, ErrClosed after Close, or the error
// that ended it: an *Error from the broker (such as slow-consumer or
// session-expired), ErrReconnectFailed or ErrGap.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) endErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Send sends env. V and ID are filled in when empty; From and Seq are left to
// the broker. Send returns once env is queued for writing: while the Client
// is reconnecting it waits in the queue and goes out after the resume, and an
// envelope whose connection broke before the broker confirmed it is sent again
// (the broker drops the repeat by its id). Send blocks while the queue is full
// (Options.SendQueue). A refusal by the broker arrives later, as an error
// envelope whose Err has Ref set to env's ID.
//
// Join, leave and ack are the Client's own business and are refused.
func (c *Client) Send(ctx context.Context, env Envelope) error {
	switch env.Type {
	case "":
		return errors.New("switchboard: envelope has no type")
	case TypeJoin, TypeLeave, TypeAck:
		return fmt.Errorf("switchboard: the client sends %s itself", env.Type)
	}
	if env.V == 0 {
		env.V = Version
	}
	if env.ID == "" {
		env.ID = newID()
	}
	env.From, env.Seq = "", 0
	for {
		select {
		case <-c.closeReq:
			return c.endErr()
		default:
		}
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return c.err
		}
		if len(c.queue) < c.opts.SendQueue {
			c.queue = append(c.queue, env)
			c.mu.Unlock()
			c.poke()
			return nil
		}
		space := c.queueSpace
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
		}
	}
}

func (c *Client) sendPayload(ctx context.Context, typ, to string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("switchboard: %s payload: %w", typ, err)
	}
	return c.Send(ctx, Envelope{Type: typ, To: to, Payload: data})
}

// SendOffer sends an SDP offer to peer to. sd.Type is set to "offer" when
// empty.
func (c *Client) SendOffer(ctx context.Context, to string, sd SessionDescription) error {
	if sd.Type == "" {
		sd.Type = TypeOffer
	}
	return c.sendPayload(ctx, TypeOffer, to, sd)
}

// SendAnswer sends an SDP answer to peer to. sd.Type is set to "answer" when
// empty.
func (c *Client) SendAnswer(ctx context.Context, to string, sd SessionDescription) error {
	if sd.Type == "" {
		sd.Type = TypeAnswer
	}
	return c.sendPayload(ctx, TypeAnswer, to, sd)
}

// SendCandidate sends an ICE candidate to peer to; nil says there are no more
// candidates (a null payload).
func (c *Client) SendCandidate(ctx context.Context, to string, cand *ICECandidateInit) error {
	return c.sendPayload(ctx, TypeCandidate, to, cand)
}

// SendBye tells peer to that the call between the two ends. payload may be
// nil.
func (c *Client) SendBye(ctx context.Context, to string, payload any) error {
	return c.sendPayload(ctx, TypeBye, to, payload)
}

// SendMessage sends application data to peer to, or to every other peer in
// the room when to is empty.
func (c *Client) SendMessage(ctx context.Context, to string, payload any) error {
	return c.sendPayload(ctx, TypeMessage, to, payload)
}

// Close flushes what Send queued (for at most Options.WriteTimeout), leaves
// the room, which ends the session, and waits for the Client's goroutines to
// end. It is idempotent; it returns nil, or the error that ended the Client
// before Close when that was not ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closeReq) })
	<-c.done
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// poke wakes the writer.
func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) setState(s State) {
	c.log.Debug("state", "state", s.String())
	if c.opts.OnStateChange != nil {
		c.opts.OnStateChange(s)
	}
}

// finish ends the Client with err.
func (c *Client) finish(err error) {
	c.stopICE()
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	close(c.queueSpace)
	c.queueSpace = make(chan struct{})
	c.mu.Unlock()
}

// errGap and fatalError steer the run loop.
var errGap = errors.New("switchboard: gap in the message sequence")

type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }

// errCloseRequested is how serve reports that Close was called.
var errCloseRequested = errors.New("switchboard: close requested")

// run owns the Client's connection: it serves one connection at a time and
// reconnects when one breaks, until Close or a fatal error.
func (c *Client) run(conn Conn) {
	defer close(c.done)
	defer close(c.msgs)
	defer func() {
		if c.ownHTTP {
			c.opts.HTTPClient.CloseIdleConnections()
		}
	}()
	gaps := 0
	for {
		err := c.serve(conn)
		if errors.Is(err, errCloseRequested) {
			c.finish(ErrClosed)
			c.setState(StateClosed)
			return
		}
		conn.Close(false)
		c.log.Info("connection lost", "err", err)
		var fatal *fatalError
		if errors.As(err, &fatal) {
			c.finish(fatal.err)
			c.setState(StateClosed)
			return
		}
		if errors.Is(err, errGap) {
			if gaps++; gaps > maxGapResumes {
				c.finish(ErrGap)
				c.setState(StateClosed)
				return
			}
		} else {
			gaps = 0
		}
		if c.opts.ReconnectTimeout < 0 {
			c.finish(fmt.Errorf("%w: reconnection is off: %w", ErrReconnectFailed, err))
			c.setState(StateClosed)
			return
		}
		c.setState(StateReconnecting)
		conn, err = c.reconnect()
		if err != nil {
			if errors.Is(err, errCloseRequested) {
				err = ErrClosed
			}
			c.finish(err)
			c.setState(StateClosed)
			return
		}
		c.setState(StateConnected)
	}
}

// reconnect dials with backoff until the session resumes, Close is called,
// the broker refuses the resume, or Options.ReconnectTimeout passes.
func (c *Client) reconnect() (Conn, error) {
	deadline := time.Now().Add(c.opts.ReconnectTimeout)
	backoff := c.opts.BackoffMin
	wait := time.Duration(rand.Int64N(int64(backoff)))
	var lastErr error
	for attempt := 1; ; attempt++ {
		if time.Now().Add(wait).After(deadline) {
			if lastErr == nil {
				lastErr = errors.New("no time left for an attempt")
			}
			return nil, fmt.Errorf("%w after %d attempts: %w", ErrReconnectFailed, attempt-1, lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.closeReq:
			t.Stop()
			c.leaveDropped()
			return nil, errCloseRequested
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.HandshakeTimeout)
		go func() {
			select {
			case <-c.closeReq:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, welcome, err := c.dial(ctx, c.base, c.joinEnvelope(true), &c.opts)
		cancel()
		if err == nil {
			var w Welcome
			if derr := welcome.Decode(&w); derr != nil || !w.Resumed {
				conn.Close(true)
				return nil, &Error{Code: CodeSessionExpired, Message: "the broker did not resume the session"}
			}
			c.setICE(welcome.Payload)
			c.log.Info("resumed", "attempt", attempt, "last_seq", c.lastSeq.Load())
			return conn, nil
		}
		select {
		case <-c.closeReq:
			c.leaveDropped()
			return nil, errCloseRequested
		default:
		}
		var pe *Error
		if errors.As(err, &pe) && pe.Code != CodeRateLimited && pe.Code != CodeInternal {
			return nil, pe
		}
		lastErr = err
		c.log.Debug("reconnect failed", "attempt", attempt, "err", err)
		wait = backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(backoff*2, c.opts.BackoffMax)
	}
}

// leaveGrace bounds the attempt to leave a dropped session on Close.
const leaveGrace = 2 * time.Second

// leaveDropped makes one short attempt to resume the dropped session only to
// leave it, so that the other peers see it go now rather than when the
// resume window passes.
func (c *Client) leaveDropped() {
	ctx, cancel := context.WithTimeout(context.Background(), min(leaveGrace, c.opts.HandshakeTimeout))
	defer cancel()
	conn, _, err := c.dial(ctx, c.base, c.joinEnvelope(true), &c.opts)
	if err != nil {
		return
	}
	conn.Close(true)
}

// refused tells the application that the broker refused a whole batch, with
// one error envelope for each envelope in it, as the broker would have said in
// the stream.
func (c *Client) refused(ctx context.Context, batch []Envelope, pe *Error) {
	for _, env := range batch {
		e := *pe
		e.Ref = env.ID
		payload, _ := json.Marshal(e)
		if c.deliver(ctx, Envelope{V: Version, Type: TypeError, Room: c.opts.Room, Payload: payload}) != nil {
			return
		}
	}
}

// serve runs one connection's reader and writer until one fails or Close is
// called, and waits for both.
func (c *Client) serve(conn Conn) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drain := make(chan struct{})
	readErr := make(chan error, 1)
	writeErr := make(chan error, 1)
	go func() { readErr <- c.readLoop(ctx, conn) }()
	go func() { writeErr <- c.writeLoop(ctx, conn, drain) }()

	var err error
	select {
	case err = <-readErr:
		cancel()
		conn.Close(false)
		<-writeErr
	case err = <-writeErr:
		cancel()
		conn.Close(false)
		<-readErr
	case <-c.closeReq:
		close(drain)
		werr := <-writeErr
		if werr == nil {
			conn.Close(true)
		}
		cancel()
		conn.Close(false)
		<-readErr
		err = errCloseRequested
	}
	return err
}

// readLoop takes envelopes from conn and hands them on, in seq order, each
// once.
func (c *Client) readLoop(ctx context.Context, conn Conn) error {
	for {
		envs, err := conn.Recv(ctx)
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return &fatalError{pe}
			}
			return err
		}
		for _, env := range envs {
			if err := c.take(ctx, env); err != nil {
				return err
			}
		}
	}
}

// take handles one envelope from the broker.
func (c *Client) take(ctx context.Context, env Envelope) error {
	if env.Seq == 0 {
		switch env.Type {
		case TypePong:
			if n, ok := confirmNumber(env.Payload); ok {
				c.confirm(n)
				return nil
			}
		case TypeWelcome:
			return nil // a resumed welcome, already handled
		case TypeICEServers:
			c.setICE(env.Payload)
			return nil
		}
		return c.deliver(ctx, env)
	}
	last := c.lastSeq.Load()
	switch {
	case env.Seq <= last:
		c.log.Debug("dropped a repeated message", "seq", env.Seq)
		return nil
	case env.Seq > last+1:
		c.log.Warn("gap in the message sequence", "expected", last+1, "got", env.Seq)
		return errGap
	}
	switch env.Type {
	case TypeError:
		var pe *Error
		if errors.As(env.Err(), &pe) && pe.Code.endsSession() {
			return &fatalError{pe}
		}
	case TypePeerJoined:
		var p PeerInfo
		if env.Decode(&p) == nil && p.Peer != "" {
			c.mu.Lock()
			c.peers[p.Peer] = p
			c.mu.Unlock()
		}
	case TypePeerLeft:
		var p PeerLeft
		if env.Decode(&p) == nil {
			c.mu.Lock()
			delete(c.peers, p.Peer)
			c.mu.Unlock()
		}
	}
	if err := c.deliver(ctx, env); err != nil {
		return err
	}
	c.lastSeq.Store(env.Seq)
	if env.Seq-c.acked.Load() >= ackEvery {
		c.poke()
	}
	return nil
}

func (c *Client) deliver(ctx context.Context, env Envelope) error {
	select {
	case c.msgs <- env:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func confirmNumber(payload json.RawMessage) (uint64, bool) {
	if len(payload) == 0 || payload[0] != '{' {
		return 0, false
	}
	var p map[string]uint64
	if json.Unmarshal(payload, &p) != nil {
		return 0, false
	}
	n, ok := p[confirmKey]
	return n, ok && len(p) == 1
}

func confirmPing(n uint64) Envelope {
	payload, _ := json.Marshal(map[string]uint64{confirmKey: n})
	return Envelope{V: Version, Type: TypePing, Payload: payload}
}

// confirm drops the envelopes that ping n confirms.
func (c *Client) confirm(n uint64) {
	c.mu.Lock()
	i := 0
	for i < len(c.unconfirmed) && c.unconfirmed[i].ping <= n {
		i++
	}
	c.unconfirmed = c.unconfirmed[i:]
	if c.pingOut == n {
		c.pingOut = 0
	}
	c.mu.Unlock()
	c.poke()
}

// takeBatch takes up to maxBatch envelopes from the queue. Unless confirming,
// they move to the unconfirmed list.
func (c *Client) takeBatch(confirming bool) []Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxBatch)
	if n == 0 {
		return nil
	}
	batch := append([]Envelope(nil), c.queue[:n]...)
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	if !confirming {
		now := time.Now()
		for _, env := range batch {
			c.unconfirmed = append(c.unconfirmed, written{env: env, ping: c.nextPing, at: now})
		}
		// A broker that answers no ping must not make the list grow for
		// ever; what is this far behind would be too old to resend anyway.
		if extra := len(c.unconfirmed) - 2*c.opts.SendQueue; extra > 0 {
			c.unconfirmed = append([]written(nil), c.unconfirmed[extra:]...)
		}
	}
	close(c.queueSpace)
	c.queueSpace = make(chan struct{})
	return batch
}

// requeue puts envelopes back at the front of the queue.
func (c *Client) requeue(envs []Envelope) {
	c.mu.Lock()
	c.queue = append(envs[:len(envs):len(envs)], c.queue...)
	c.mu.Unlock()
}

// requeueUnconfirmed puts what the last connection wrote without
// confirmation back at the front of the queue, for a new connection.
func (c *Client) requeueUnconfirmed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var envs []Envelope
	now := time.Now()
	for _, w := range c.unconfirmed {
		if now.Sub(w.at) > resendWindow {
			c.log.Warn("not resending an unconfirmed envelope: too old to be deduplicated",
				"type", w.env.Type, "id", w.env.ID)
			continue
		}
		envs = append(envs, w.env)
	}
	c.unconfirmed = nil
	c.pingOut = 0
	c.queue = append(envs, c.queue...)
}

// pingDue returns the number of a confirm ping to send now, or 0.
func (c *Client) pingDue() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingOut != 0 || len(c.unconfirmed) == 0 || c.unconfirmed[len(c.unconfirmed)-1].ping != c.nextPing {
		return 0
	}
	c.pingOut = c.nextPing
	c.nextPing++
	return c.pingOut
}

// writeLoop owns every write to conn: queued envelopes, acks and pings. When
// drain is closed it writes what is queued and returns nil.
func (c *Client) writeLoop(ctx context.Context, conn Conn, drain <-chan struct{}) error {
	_, confirming := conn.(ConfirmingConn)
	c.requeueUnconfirmed()
	// Ticking at a quarter of the interval, an ack is never more than
	// 1.25 intervals after the last one, however the ticks fall.
	ticker := time.NewTicker(ackInterval / 4)
	defer ticker.Stop()
	lastWrite := time.Now()
	lastAck := time.Now()
	draining := false
	var drainDeadline time.Time
	for {
		for {
			batch := c.takeBatch(confirming)
			if len(batch) == 0 {
				break
			}
			if err := conn.Send(ctx, batch); err != nil {
				var pe *Error
				switch {
				case errors.As(err, &pe) && pe.Code.endsSession():
					return &fatalError{pe}
				case errors.As(err, &pe):
					// Refused whole: tell the application, as the broker
					// would have in the stream.
					c.refused(ctx, batch, pe)
					continue
				case confirming:
					c.requeue(batch)
				}
				return err
			}
			lastWrite = time.Now()
			if draining && time.Now().After(drainDeadline) {
				return nil
			}
		}
		if last := c.lastSeq.Load(); last > c.acked.Load() &&
			(last-c.acked.Load() >= ackEvery || time.Since(lastAck) >= ackInterval || draining) {
			if err := conn.Ack(ctx, last); err != nil {
				return err
			}
			c.acked.Store(last)
			lastAck = time.Now()
		}
		if draining {
			return nil
		}
		if !confirming {
			// A confirm ping, or a keep-alive (number 0, which confirms
			// nothing) on an idle connection.
			n := c.pingDue()
			if n != 0 || time.Since(lastWrite) >= c.opts.PingInterval {
				if err := conn.Send(ctx, []Envelope{confirmPing(n)}); err != nil {
					return err
				}
				lastWrite = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drain:
			draining = true
			drainDeadline = time.Now().Add(c.opts.WriteTimeout)
			drain = nil
		case <-c.wake:
		case <-ticker.C:
		}
	}
}
