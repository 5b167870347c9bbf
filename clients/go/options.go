package switchboard

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configures a Client. The zero value of every field means its
// default, which the field's comment gives; only Room is required.
type Options struct {
	// Room is the room to join: 1 to 64 characters of A-Z a-z 0-9 . _ -.
	// Required.
	Room string
	// Peer is this peer's id in the room. Default: the broker picks a random
	// one; Client.Peer tells which.
	Peer string
	// Token is the join token (a JWT), for a broker configured with a
	// secret. Default: none.
	Token string
	// Meta is shown to the other peers in the room (at most 1 KiB of JSON).
	// Default: none.
	Meta map[string]any
	// Transport is the name of the transport: "websocket" or "longpoll", or
	// one added with RegisterTransport. Default: "websocket".
	Transport string

	// Header holds extra HTTP headers for every request to the broker (the
	// WebSocket handshake, the long-poll requests), such as Origin.
	// Default: none.
	Header http.Header
	// HTTPClient makes the long-poll requests. Default: a client of the
	// Client's own that dials with NetDialContext and TLSConfig.
	HTTPClient *http.Client
	// NetDialContext opens the network connections to the broker.
	// Default: a net.Dialer with a 10 s timeout.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is used for https and wss URLs. Default: the system's roots.
	TLSConfig *tls.Config

	// ReconnectTimeout is how long the Client keeps trying to reconnect and
	// resume after its connection broke, before it gives up with
	// ErrReconnectFailed. Negative turns automatic reconnection off: the
	// first broken connection ends the Client. Default: 60 s.
	ReconnectTimeout time.Duration
	// BackoffMin is the wait before the first reconnection attempt; each
	// failed attempt doubles it, with jitter. Default: 100 ms.
	BackoffMin time.Duration
	// BackoffMax caps the wait between reconnection attempts. Default: 5 s.
	BackoffMax time.Duration
	// HandshakeTimeout bounds one attempt to connect and join.
	// Default: 10 s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to the broker, and the flushing of
	// queued envelopes on Close. Default: 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often the Client pings an idle WebSocket; a
	// connection that has heard nothing from the broker for two intervals
	// and 10 s more is taken as broken. Default: 25 s.
	PingInterval time.Duration
	// PollWait is how long one long-poll request waits for messages, in
	// whole seconds from 1 to 55. Default: 25 s.
	PollWait time.Duration

	// ReceiveBuffer is how many received envelopes wait for Recv or
	// Messages before the Client stops reading from the broker, which then
	// keeps them up to its own bound, and past it ends the session as a slow
	// consumer (on long-polling, a session that is not polled for 60 s
	// ends). Default: 256.
	ReceiveBuffer int
	// SendQueue is how many envelopes Send may queue, while the Client is
	// reconnecting or its connection is slow, before Send blocks.
	// Default: 1024.
	SendQueue int

	// OnStateChange, if set, is called when the Client's connection state
	// changes: StateReconnecting when its connection broke, StateConnected
	// when it has resumed, StateClosed at the end. It is called from the
	// Client's own goroutine, in order, and must not block. Default: none.
	OnStateChange func(State)
	// Logger receives the Client's log, with the room and peer as fields.
	// Default: none.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultTransport        = "websocket"
	DefaultReconnectTimeout = 60 * time.Second
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultPollWait         = 25 * time.Second
	DefaultReceiveBuffer    = 256
	DefaultSendQueue        = 1024
)

// maxPollWait is the longest wait the broker grants a long-poll request.
const maxPollWait = 55 * time.Second

// init applies the defaults in place.
func (o *Options) init() error {
	if o.Room == "" {
		return errors.New("switchboard: Options.Room is required")
	}
	if o.Transport == "" {
		o.Transport = DefaultTransport
	}
	if o.NetDialContext == nil {
		o.NetDialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         o.NetDialContext,
			TLSClientConfig:     o.TLSConfig,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if o.ReconnectTimeout == 0 {
		o.ReconnectTimeout = DefaultReconnectTimeout
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PollWait <= 0 {
		o.PollWait = DefaultPollWait
	}
	if o.PollWait > maxPollWait {
		o.PollWait = maxPollWait
	}
	if o.PollWait < time.Second {
		o.PollWait = time.Second // the wait is asked for in whole seconds
	}
	if o.ReceiveBuffer <= 0 {
		o.ReceiveBuffer = DefaultReceiveBuffer
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// readTimeout is how long a connection may stay silent before it is taken as
// broken.
func (o *Options) readTimeout() time.Duration { return 2*o.PingInterval + 10*time.Second }

// State is a Client's connection state, as Options.OnStateChange reports it.
type State int

// The connection states.
const (
	StateConnected    State = iota + 1 // joined, or resumed after a break
	StateReconnecting                  // the connection broke; trying to resume
	StateClosed                        // the Client has ended
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}
