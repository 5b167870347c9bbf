// Package httpserver is the HTTP front of a Switchboard node: one chi router
// that the HTTP transports (WebSocket, long-polling, or a custom adapter)
// mount their routes on, beside /healthz, /readyz, /metrics, the browser
// client at /client/ and the demo page at /.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
)

// Server timeouts. Long-poll GETs wait up to 55 s, so writes may take longer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 75 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
	// ShutdownGrace is how long a request in flight when shutdown starts
	// may go on reading its body (and working with a live context); past
	// it, its connection's reads fail and its context is cancelled, and it
	// has as long again to write its answer before writes fail too. So a
	// stalled client (a trickled body, say) cannot hold shutdown up.
	ShutdownGrace = time.Second
)

// Options configures a Server. The zero value of every field means its default.
type Options struct {
	// Addr is the address to listen on. Default: ":8080".
	Addr string
	// Files holds the browser client (switchboard.js, switchboard.d.ts) and
	// the demo page (demo/index.html and its assets). Default: none served.
	Files fs.FS
	// Gatherer is what /metrics exports. Default: prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Pprof serves net/http/pprof under /debug/pprof/. Default: off.
	Pprof bool
	// Ready reports whether the node can serve; /readyz answers 503 with its
	// error otherwise. Default: ready while not shutting down.
	Ready func() error
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (slowloris). Default: ReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// AllowedOrigins lists the browser origins that CORS lets fetch
	// /v1/ice-servers; "*" allows any. Default: the same origin only.
	AllowedOrigins []string
	// Origins is the rest of the origin policy of /v1/ice-servers (the
	// node's public origins, listen address and trust_proxy); its Allowed
	// defaults to AllowedOrigins. Default: the zero Policy.
	Origins origin.Policy
}

// Server serves a broker's HTTP transports and operations endpoints.
type Server struct {
	opts     Options
	b        *broker.Broker
	router   chi.Router
	srv      *http.Server
	shutting atomic.Bool

	// base is the context of every request: cancelled ShutdownGrace after
	// shutdown starts, so that handlers still waiting on it answer.
	base       context.Context
	cancelBase context.CancelFunc

	resumed *resumed // connections transports hijacked and hand back

	connsMu sync.Mutex
	conns   map[net.Conn]http.ConnState // connections not hijacked or closed
	cutAt   time.Time                   // set when shutdown starts: when reads fail (writes: ShutdownGrace later)
}

// New returns a server for b that mounts every transport in ts that is a
// broker.HTTPTransport.
func New(b *broker.Broker, opts Options, ts ...broker.Transport) *Server {
	if opts.Addr == "" {
		opts.Addr = ":8080"
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = ReadHeaderTimeout
	}
	if len(opts.Origins.Allowed) == 0 {
		opts.Origins.Allowed = opts.AllowedOrigins
	}
	s := &Server{opts: opts, b: b, conns: make(map[net.Conn]http.ConnState), resumed: newResumed()}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	r := chi.NewRouter()
	r.Use(recoverer(b.Logger()))
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	r.Get("/readyz", s.ready)
	r.Handle("/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	cors := opts.Origins.CORS(b.Logger())
	r.With(cors).MethodFunc(http.MethodGet, "/v1/ice-servers", s.iceServers)
	r.With(cors).MethodFunc(http.MethodOptions, "/v1/ice-servers", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent) // a preflight without an Origin: nothing to allow
	})
	if opts.Pprof {
		r.HandleFunc("/debug/pprof/*", pprof.Index)
		r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		r.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if opts.Files != nil {
		files := http.StripPrefix("/client", http.FileServerFS(opts.Files))
		// The client is imported by pages of the allowed origins too
		// (import … from "https://broker/client/switchboard.js"): CORS.
		client := func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".d.ts") {
				w.Header().Set("Content-Type", "application/typescript; charset=utf-8")
			}
			files.ServeHTTP(w, r)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r.With(cors).MethodFunc(m, "/client/*", client)
		}
		r.With(cors).MethodFunc(http.MethodOptions, "/client/*", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})
		if demo, err := fs.Sub(opts.Files, "demo"); err == nil {
			r.Get("/*", http.FileServerFS(demo).ServeHTTP)
		}
	}
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		names = append(names, t.Name())
		if m, ok := t.(broker.HTTPTransport); ok {
			m.Mount(r, b)
		}
		if rc, ok := t.(ConnResumer); ok {
			rc.ResumeConnsWith(s.resumed.resume)
		}
	}
	list, _ := json.Marshal(struct {
		Transports []string `json:"transports"`
	}{names})
	r.Get("/v1/transports", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(list)
	})
	s.router = r
	s.srv = &http.Server{
		Addr:              opts.Addr,
		Handler:           r,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(b.Logger().Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ConnState:         s.connState,
	}
	return s
}

// connState keeps track of the connections that a shutdown may have to cut.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	switch state {
	case http.StateHijacked, http.StateClosed:
		delete(s.conns, c)
		return
	case http.StateNew, http.StateActive:
		if !s.cutAt.IsZero() {
			// A request begun during shutdown gets what is left of the grace.
			cut(c, s.cutAt)
		}
	}
	s.conns[c] = state
}

// Handler returns the server's router, e.g. for httptest.
func (s *Server) Handler() http.Handler { return s.router }

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	var err error
	if s.shutting.Load() {
		err = errors.New("shutting down")
	} else if s.opts.Ready != nil {
		err = s.opts.Ready()
	}
	if err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Serve accepts connections on ln until Shutdown, and serves the
// connections transports hand back (ConnResumer) beside them.
func (s *Server) Serve(ln net.Listener) error {
	s.resumed.start.Do(func() {
		s.resumed.addr = ln.Addr()
		s.resumed.serving.Store(true)
		go func() {
			_ = s.srv.Serve(s.resumed) // ends with ErrServerClosed at Shutdown
			s.resumed.Close()
		}()
	})
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on Options.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight. A request gets ShutdownGrace to finish reading its
// body with a live context; then its reads fail (a trickled body is cut)
// and its context is cancelled (a handler waiting on it answers), and it
// has ShutdownGrace more to write its answer. Upgraded WebSocket
// connections are the transport's to close; the transports' own Run answer
// waiting long-polls at once. Calling it again is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.connsMu.Lock()
	if s.cutAt.IsZero() {
		s.cutAt = time.Now().Add(ShutdownGrace)
		for c, state := range s.conns {
			if state == http.StateNew || state == http.StateActive {
				cut(c, s.cutAt)
			}
		}
		time.AfterFunc(ShutdownGrace, s.cancelBase)
	}
	s.connsMu.Unlock()
	s.resumed.Close()
	return s.srv.Shutdown(ctx)
}

// cut makes c's reads fail from at on, and its writes ShutdownGrace later.
func cut(c net.Conn, at time.Time) {
	_ = c.SetReadDeadline(at)
	_ = c.SetWriteDeadline(at.Add(ShutdownGrace))
}

// recoverer ends a panicking request with 500 and logs it; the server goes on.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					log.Error("request panicked", "method", r.Method, "panic", p)
					http.Error(w, "internal error", http.StatusInternalServerError)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
