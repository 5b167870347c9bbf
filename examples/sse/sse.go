// Package sse is a Switchboard transport for browsers, written outside the
// broker's tree: Server-Sent Events down, HTTP POST up. Its browser side is
// sse.js, a custom transport for the browser client (connect({transport})).
//
// Importing the package registers the transport as "sse". The wire, on the
// node's HTTP port:
//
//   - POST /v1/sse, body: the join envelope. A refused join answers 4xx
//     with the error envelope as JSON. Otherwise 200 and a text/event-stream
//     that stays open: one event per envelope for the peer ("data: <json>"),
//     the welcome first. The welcome names the session.
//   - POST /v1/sse/{session}/messages, body: one envelope. 202; a refusal
//     reaches the peer as an error event on its stream, as on WebSocket; an
//     unknown or ended session answers 404 with session-expired.
//   - A stream that ends without a leave keeps the session for a resume: a
//     new POST /v1/sse with a resuming join carries on.
//
// Settings (transports.sse, or SWITCHBOARD_TRANSPORTS_SSE_<KEY>):
// write_timeout (10s) and keepalive (25s, a comment line on a quiet stream
// so that proxies keep it open).
package sse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
)

// Name is the transport's registered name.
const Name = "sse"

// Defaults of Options.
const (
	DefaultWriteTimeout = 10 * time.Second
	DefaultKeepalive    = 25 * time.Second
	retryTake           = time.Second
)

// Options configures the transport. The zero value of every field means its
// default.
type Options struct {
	// WriteTimeout drops a stream whose peer takes longer than this to take
	// a write. Default: DefaultWriteTimeout.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// Keepalive is how often a quiet stream gets a comment line. Default:
	// DefaultKeepalive.
	Keepalive time.Duration `yaml:"keepalive"`
	// Origins is the browser origin policy. Default: the node's.
	Origins origin.Policy `yaml:"-"`
}

func init() {
	broker.Register(Name, func(o Options, shared broker.TransportOptions) (broker.Transport, error) {
		o.Origins = origin.Policy{Allowed: shared.AllowedOrigins, Public: shared.PublicOrigins, Listen: shared.Listen, TrustProxy: shared.TrustProxy}
		return New(o), nil
	})
}

// Transport serves peers over Server-Sent Events and POST. Mount it, then
// Run it. It is safe for concurrent use.
type Transport struct {
	opts Options
	b    *broker.Broker
	log  *slog.Logger

	mu       sync.Mutex
	stopping bool
	stop     chan struct{} // closed at shutdown: streams end
	streams  sync.WaitGroup
}

var _ broker.HTTPTransport = (*Transport)(nil)

// New returns a transport with opts.
func New(opts Options) *Transport {
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = DefaultKeepalive
	}
	return &Transport{opts: opts, log: slog.Default(), stop: make(chan struct{})}
}

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Mount implements broker.HTTPTransport.
func (t *Transport) Mount(mux broker.Mux, b *broker.Broker) {
	t.b = b
	t.log = b.Logger().With("transport", Name)
	cors := t.opts.Origins.CORS(t.log)
	preflight := cors(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	mux.Handle("OPTIONS /v1/sse", preflight)
	mux.Handle("OPTIONS /v1/sse/{session}/messages", preflight)
	mux.Handle("POST /v1/sse", cors(http.HandlerFunc(t.stream)))
	mux.Handle("POST /v1/sse/{session}/messages", cors(http.HandlerFunc(t.post)))
}

// Run implements broker.Transport: at shutdown it ends every stream (their
// sessions wait for a resume) and waits for them.
func (t *Transport) Run(ctx context.Context, _ *broker.Broker) error {
	<-ctx.Done()
	t.mu.Lock()
	if !t.stopping {
		t.stopping = true
		close(t.stop)
	}
	t.mu.Unlock()
	t.streams.Wait()
	return nil
}

// refuse answers a request with an error envelope and its code's status.
func refuse(w http.ResponseWriter, err error) {
	e := broker.AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.HTTPStatus())
	_, _ = w.Write(broker.ErrorFrame(e))
}

func (t *Transport) readEnvelope(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := t.b.Options().MaxEnvelope
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)+1))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) || len(data) > max {
		return nil, broker.Errorf(broker.CodeTooLarge, "envelope over %d bytes", max)
	}
	if err != nil {
		return nil, broker.Errorf(broker.CodeBadRequest, "reading the body: %v", err)
	}
	return data, nil
}

// stream answers POST /v1/sse: the join, then the event stream.
func (t *Transport) stream(w http.ResponseWriter, r *http.Request) {
	data, err := t.readEnvelope(w, r)
	if err != nil {
		refuse(w, err)
		return
	}
	env, err := broker.Decode(data, t.b.Options().MaxEnvelope)
	if err != nil {
		refuse(w, err)
		return
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		refuse(w, err)
		return
	}
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		refuse(w, broker.Errorf(broker.CodeInternal, "shutting down"))
		return
	}
	t.streams.Add(1)
	t.mu.Unlock()
	defer t.streams.Done()
	joined, err := t.b.Join(r.Context(), req)
	if err != nil {
		refuse(w, err)
		return
	}
	att := joined.Session.Attach()
	defer att.Detach()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(frames ...[]byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
		for _, f := range frames {
			if _, err := io.WriteString(w, "data: "); err != nil {
				return err
			}
			if _, err := w.Write(f); err != nil {
				return err
			}
			if _, err := io.WriteString(w, "\n\n"); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	if err := write(joined.Welcome); err != nil {
		return
	}
	keepalive := time.NewTicker(t.opts.Keepalive)
	defer keepalive.Stop()
	after := joined.After
	for {
		frames, last, wait, err := att.Pending(after)
		var pe *broker.Error
		switch {
		case errors.Is(err, broker.ErrSuperseded), errors.Is(err, broker.ErrSessionClosed):
			return
		case errors.As(err, &pe):
			_ = write(broker.ErrorFrame(pe))
			return
		case err != nil:
			select {
			case <-time.After(retryTake):
				continue
			case <-r.Context().Done():
				return
			}
		}
		if len(frames) > 0 {
			if err := write(frames...); err != nil {
				return
			}
			after = last
			continue
		}
		select {
		case <-wait:
		case <-att.Gone():
		case <-keepalive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-t.stop:
			return
		}
	}
}

// post answers POST /v1/sse/{session}/messages: one envelope from the peer.
func (t *Transport) post(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("session")
	data, err := t.readEnvelope(w, r)
	if err != nil {
		// Refused like any bad envelope: as an error event on the stream.
		if s, ok := t.b.Session(id); ok && s.Transport() == Name {
			s.Refuse("", err)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		refuse(w, err)
		return
	}
	for tries := 0; ; tries++ {
		s, ok := t.b.Session(id)
		if !ok || s.Transport() != Name {
			refuse(w, broker.Errorf(broker.CodeSessionExpired, "no open session over sse: join again"))
			return
		}
		err = s.HandleRaw(r.Context(), data)
		// A request may reach any node of a cluster: when another one took
		// the session over meanwhile, look it up again and retry there.
		if errors.Is(err, broker.ErrSessionMoved) && tries < 3 {
			continue
		}
		break
	}
	if errors.Is(err, broker.ErrSessionClosed) {
		refuse(w, broker.Errorf(broker.CodeSessionExpired, "the session has ended"))
		return
	}
	// Other refusals reach the peer as error events on its stream.
	w.WriteHeader(http.StatusAccepted)
}
