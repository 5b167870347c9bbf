// Package longpoll is Switchboard's HTTP long-polling transport
// (docs/protocol.md, section 3, "HTTP long-polling"), for peers that cannot
// hold a WebSocket open: a session is created by POST /v1/sessions and then
// addressed by its secret; envelopes go up in POSTs and come down in GETs
// that wait for them.
package longpoll

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
)

// Name is the transport's registered name.
const Name = "longpoll"

// Defaults of the long-polling transport (docs/protocol.md, section 3).
const (
	DefaultWait        = 25 * time.Second
	MaxWait            = 55 * time.Second
	DefaultIdleTimeout = 60 * time.Second // a session nobody polls this long ends
	bodyEnvelopes      = 16               // a POST body may hold this many largest envelopes
	storeCheckTimeout  = 5 * time.Second  // bounds asking the cluster's store which transport carries a session
)

func init() {
	broker.Register(Name, func(o Options, shared broker.TransportOptions) (broker.Transport, error) {
		if len(o.AllowedOrigins) == 0 {
			o.AllowedOrigins = shared.AllowedOrigins
		}
		o.Origins.Public, o.Origins.Listen, o.Origins.TrustProxy = shared.PublicOrigins, shared.Listen, shared.TrustProxy
		return New(o), nil
	})
}

// Options configures the transport. The zero value of every field means its default.
type Options struct {
	// AllowedOrigins lists the other origins allowed by CORS; "*" allows
	// any. Default: the same origin only (see origin.Policy).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Origins is the rest of the origin policy, which a node sets from its
	// broker.TransportOptions (public_origins, listen, trust_proxy); its
	// Allowed defaults to AllowedOrigins. Default: the zero Policy.
	Origins origin.Policy `yaml:"-"`
	// IdleTimeout ends a session that nobody polls for this long. Default: 60 s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ParkAfter is how long a GET waits with nothing to deliver before the
	// transport parks it: it keeps the connection and lets the request's
	// goroutines and buffers go (park.go). Default: DefaultParkAfter (1 s);
	// negative: never.
	ParkAfter time.Duration `yaml:"park_after"`
}

// Transport serves peers over HTTP long-polling. Mount it, then Run it.
type Transport struct {
	opts Options
	b    *broker.Broker
	log  *slog.Logger
	// refusedLog bounds what clients can make us log: a line per interval,
	// the rest counted.
	refusedLog broker.LogLimiter

	mu       sync.Mutex
	stopping bool
	stopped  chan struct{} // closed at shutdown: waiting GETs answer at once
	polls    sync.WaitGroup
	parked   map[*parked]struct{} // polls waiting without a goroutine (park.go)

	// resume hands a hijacked connection back to the HTTP server; nil
	// where the server does not take connections back (no poll is parked).
	resume func(net.Conn) bool
}

var _ broker.HTTPTransport = (*Transport)(nil)

// New returns a long-polling transport with opts.
func New(opts Options) *Transport {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.ParkAfter == 0 {
		opts.ParkAfter = DefaultParkAfter
	}
	if len(opts.Origins.Allowed) == 0 {
		opts.Origins.Allowed = opts.AllowedOrigins
	}
	return &Transport{opts: opts, stopped: make(chan struct{}), log: slog.Default(), parked: make(map[*parked]struct{})}
}

// Options returns the transport's options, defaults applied.
func (t *Transport) Options() Options { return t.opts }

// Name implements broker.Transport.
func (t *Transport) Name() string { return Name }

// Mount implements broker.HTTPTransport: it adds the /v1/sessions routes to
// mux, serving peers of b.
func (t *Transport) Mount(mux broker.Mux, b *broker.Broker) {
	t.b = b
	t.log = b.Logger().With("transport", Name)
	cors := t.opts.Origins.CORS(t.log)
	preflight := cors(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, path := range []string{"/v1/sessions", "/v1/sessions/", "/v1/sessions/{session}", "/v1/sessions/{session}/messages"} {
		mux.Handle("OPTIONS "+path, preflight)
	}
	// With and without the slash, as clients have sent both.
	mux.Handle("POST /v1/sessions", cors(http.HandlerFunc(t.create)))
	mux.Handle("POST /v1/sessions/", cors(http.HandlerFunc(t.create)))
	mux.Handle("POST /v1/sessions/{session}/messages", cors(http.HandlerFunc(t.post)))
	mux.Handle("GET /v1/sessions/{session}/messages", cors(http.HandlerFunc(t.poll)))
	mux.Handle("DELETE /v1/sessions/{session}", cors(http.HandlerFunc(t.leave)))
}

// Run implements broker.Transport: it waits for ctx to end, then answers every
// waiting poll and waits for them.
func (t *Transport) Run(ctx context.Context, _ *broker.Broker) error {
	<-ctx.Done()
	t.mu.Lock()
	if !t.stopping {
		t.stopping = true
		close(t.stopped)
	}
	t.mu.Unlock()
	t.wakeParked()
	t.polls.Wait()
	return nil
}

// routePattern names r's route without its session secret.
func routePattern(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern // net/http.ServeMux
	}
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return r.Method + " " + rc.RoutePattern()
	}
	return r.Method
}

// refuse answers a request with an error envelope and the status its code maps to.
func (t *Transport) refuse(w http.ResponseWriter, r *http.Request, err error) {
	e := broker.AsError(err)
	level := slog.LevelInfo
	if e.Code == broker.CodeInternal {
		level = slog.LevelError
	}
	t.refusedLog.Log(t.log, level, "request refused", "method", r.Method, "route", routePattern(r), "code", e.Code, "error", err)
	writeJSON(w, e.Code.HTTPStatus(), broker.ErrorFrame(e))
}

// Header values every JSON answer carries, shared: net/http only reads them.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody reads at most limit bytes of the request body, into a buffer
// sized by its Content-Length when it has one.
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	var data []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= int64(limit) {
		data = make([]byte, n)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, broker.Errorf(broker.CodeTooLarge, "body is larger than %d bytes", limit)
	}
	if err != nil {
		return nil, broker.Errorf(broker.CodeBadRequest, "reading the body: %v", err)
	}
	return data, nil
}

// session finds the session a request addresses. A session secret is
// honoured only on the transport that carries the session: the secret of a
// WebSocket or Redis session answers session-expired here, and moving the
// session to long-polling takes a resume join, which checks the token.
func (t *Transport) session(r *http.Request) (*broker.Session, error) {
	id := r.PathValue("session")
	// Looked at on this node first: looking a session up with Session takes
	// it over from another node, which must not happen for another transport's.
	if s, ok := t.b.LocalSession(id); ok {
		if foreign(s) {
			return nil, otherTransport()
		}
	} else if st := t.b.Options().Store; st != nil {
		// Another node's session, perhaps: the store says which transport
		// carries it, before this node takes it over.
		ctx, cancel := context.WithTimeout(r.Context(), storeCheckTimeout)
		rec, err := st.Load(ctx, id)
		cancel()
		if err == nil && rec.Transport != "" && rec.Transport != Name {
			return nil, otherTransport()
		}
	}
	s, ok := t.b.Session(id)
	if !ok {
		return nil, broker.Errorf(broker.CodeSessionExpired, "no such session: it ended or never was")
	}
	if foreign(s) {
		return nil, otherTransport()
	}
	return s, nil
}

// foreign reports whether another transport carries s. A session taken over
// from another node whose record predates the transport field has none: it
// was moved by a long-poll request, the only kind that moves a session
// without a join.
func foreign(s *broker.Session) bool {
	tr := s.Transport()
	return tr != Name && tr != ""
}

// otherTransport answers a request that names the secret of a session
// carried by another transport.
func otherTransport() error {
	return broker.Errorf(broker.CodeSessionExpired, "this session is not open over long-polling: resume it with a join (POST /v1/sessions), or start a new one")
}

// create answers POST /v1/sessions: a join.
func (t *Transport) create(w http.ResponseWriter, r *http.Request) {
	max := t.b.Options().MaxEnvelope
	data, err := readBody(w, r, max)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	env, err := broker.Decode(data, max)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	req, err := broker.ParseJoin(env, Name)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	req.Linger = t.opts.IdleTimeout
	req.Client = broker.ClientAddr(r.RemoteAddr)
	joined, err := t.b.Join(r.Context(), req)
	if err != nil {
		if pe := (*broker.Error)(nil); errors.As(err, &pe) && pe.Ref == "" {
			pe.Ref = env.ID
		}
		t.refuse(w, r, err)
		return
	}
	status := http.StatusCreated
	if joined.Resumed {
		status = http.StatusOK
	}
	writeJSON(w, status, joined.Welcome)
}

// post answers POST /v1/sessions/{session}/messages: one envelope or an array.
func (t *Transport) post(w http.ResponseWriter, r *http.Request) {
	s, err := t.session(r)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	if s.Closed() {
		t.refuse(w, r, broker.Errorf(broker.CodeSessionExpired, "the session has ended"))
		return
	}
	max := t.b.Options().MaxEnvelope
	data, err := readBody(w, r, max*bodyEnvelopes)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	var items [][]byte
	switch trimmed := bytes.TrimSpace(data); {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if items, err = broker.SplitArray(trimmed); err != nil {
			// SplitArray stops at the depth an envelope may nest: an array
			// that holds one nested deeper is split again, without that
			// bound, so that each of its envelopes is handled on its own.
			if items, err = splitDeep(trimmed); err != nil {
				t.refuse(w, r, broker.Errorf(broker.CodeBadRequest, "body is not a JSON array of envelopes"))
				return
			}
		}
	case broker.ValidJSON(trimmed):
		items = [][]byte{trimmed}
	default:
		t.refuse(w, r, broker.Errorf(broker.CodeBadRequest, "body is not JSON"))
		return
	}
	accepted := 0
	for _, item := range items {
		err := s.HandleRaw(r.Context(), item)
		for tries := 0; errors.Is(err, broker.ErrSessionMoved) && tries < 3; tries++ {
			// Another node took the session over since it was looked up
			// (a session's requests may go to any node): take it back.
			if s, err = t.session(r); err != nil {
				err = broker.ErrSessionClosed // and so no more items
				break
			}
			err = s.HandleRaw(r.Context(), item)
		}
		if err == nil {
			accepted++
		} else if errors.Is(err, broker.ErrSessionClosed) {
			break
		}
	}
	writeJSON(w, http.StatusAccepted, []byte(`{"accepted":`+strconv.Itoa(accepted)+`}`))
}

// poll answers GET /v1/sessions/{session}/messages?after=N&wait=S.
func (t *Transport) poll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := queryUint(q.Get("after"), 0)
	if err != nil {
		t.refuse(w, r, broker.Errorf(broker.CodeBadRequest, "after must be a whole number"))
		return
	}
	waitSec, err := queryUint(q.Get("wait"), uint64(DefaultWait/time.Second))
	if err != nil || waitSec > uint64(MaxWait/time.Second) {
		t.refuse(w, r, broker.Errorf(broker.CodeBadRequest, "wait must be a whole number of seconds, at most %d", int(MaxWait/time.Second)))
		return
	}
	s, err := t.session(r)
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	if err := s.Ack(after); err != nil {
		t.refuse(w, r, err)
		return
	}
	if s.Closed() {
		t.ended(w, r, s, after)
		return
	}
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		writeJSON(w, http.StatusOK, []byte("[]"))
		return
	}
	t.polls.Add(1)
	t.mu.Unlock()
	until := time.Now().Add(time.Duration(waitSec) * time.Second)
	p := &parked{t: t, s: s, after: after}
	p.att = s.AttachFunc(p.onGone)
	defer func() {
		if p.state.Load() == waiting { // else the parked poll's answer does this
			p.att.Detach()
			t.polls.Done()
		}
	}()
	att := p.att
	ctx, cancel := context.WithDeadline(r.Context(), until)
	defer cancel()
	var parkTimer <-chan time.Time
	if t.canPark(w, r) {
		pt := time.NewTimer(t.opts.ParkAfter)
		defer pt.Stop()
		parkTimer = pt.C
	}
	for {
		frames, _, wait, err := att.Pending(after)
		if errors.Is(err, broker.ErrSuperseded) {
			if s.Closed() { // ended while this request attached
				t.ended(w, r, s, after)
				return
			}
			writeJSON(w, http.StatusOK, []byte("[]"))
			return
		}
		if errors.Is(err, broker.ErrSessionClosed) {
			err = broker.Errorf(broker.CodeSessionExpired, "the session has ended")
		}
		if err != nil {
			t.refuse(w, r, err)
			return
		}
		if wait == nil {
			writeJSON(w, http.StatusOK, joinFrames(frames))
			return
		}
		select {
		case <-wait:
			continue
		case <-parkTimer:
			if t.park(w, p, until) {
				return
			}
			parkTimer = nil
			continue
		case <-ctx.Done():
		case <-att.Gone():
		case <-t.stopped:
		}
		writeJSON(w, http.StatusOK, []byte("[]"))
		return
	}
}

// ended answers a poll of a session that has ended: its last messages, while
// it has any after seq after, and then 404 session-expired.
func (t *Transport) ended(w http.ResponseWriter, r *http.Request, s *broker.Session, after uint64) {
	att := s.Attach()
	defer att.Detach()
	frames, _, _, err := att.Pending(after)
	if err == nil && len(frames) > 0 {
		writeJSON(w, http.StatusOK, joinFrames(frames))
		return
	}
	if err == nil || errors.Is(err, broker.ErrSessionClosed) {
		err = broker.Errorf(broker.CodeSessionExpired, "the session has ended")
	}
	t.refuse(w, r, err)
}

// leave answers DELETE /v1/sessions/{session}.
func (t *Transport) leave(w http.ResponseWriter, r *http.Request) {
	s, err := t.session(r)
	if err == nil && s.Closed() {
		err = broker.Errorf(broker.CodeSessionExpired, "the session has ended")
	}
	if err != nil {
		t.refuse(w, r, err)
		return
	}
	// The peer is done with its messages: whatever it had not polled is
	// forgotten, so that a later poll answers session-expired.
	if err := s.Ack(s.LastSeq()); err != nil {
		t.log.Warn("forgetting a leaving session's messages", "session", s, "error", err)
	}
	s.Close(broker.ReasonLeave)
	w.WriteHeader(http.StatusNoContent)
}

func queryUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// joinFrames writes frames as one JSON array.
func joinFrames(frames [][]byte) []byte {
	n := 2
	for _, f := range frames {
		n += len(f) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, f := range frames {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, f...)
	}
	return append(out, ']')
}
