// Package origin decides which browser origins may use a Switchboard node's
// HTTP transports: the WebSocket upgrade, CORS on long-polling, and the routes
// of a custom adapter. A Policy is the one check they all make
// (docs/protocol.md, section 6, "Origins").
//
// A request without an Origin header does not come from a browser page and
// is always let through: origins guard browsers' users against other sites'
// pages, not the broker against programs, which tokens do.
package origin

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Policy says which browser origins may use the broker. The zero value
// allows same-origin requests to a loopback host only. A Policy is not
// changed after first use; it is safe for concurrent use.
//
// A request is same-origin when its Origin's scheme is the request's own
// (https over TLS, or as X-Forwarded-Proto says when TrustProxy is set; else
// http), its Origin's host and port are the request's Host, and that Host is
// one the broker answers to: a loopback name or address, the host of
// Listen, or the host of one of Public. The Host header alone proves
// nothing: a page on evil.example whose name was rebound to the broker's
// address sends Host: evil.example, and is refused.
type Policy struct {
	// Allowed lists the other origins whose pages may use the broker, as
	// "https://app.example.com" (scheme, host and port, compared without
	// case and with default ports dropped); "*" allows any. Default: none.
	Allowed []string
	// Public lists the origins at which browsers reach the broker itself,
	// such as "https://signal.example.com": its demo page, or an
	// application served beside it. Requests from them are same-origin.
	// Default: none, and then only loopback hosts (and Listen's) count as
	// the broker's own.
	Public []string
	// Listen is the address the broker listens on (":8080",
	// "10.0.0.5:8080"). A host named in it, not a wildcard, is one the
	// broker answers to. Default: none.
	Listen string
	// TrustProxy takes a request's scheme from the X-Forwarded-Proto header
	// that a reverse proxy terminating TLS sets. Set it only behind such a
	// proxy: anyone else can send the header. Default: off; the scheme is
	// https only for a request that came over TLS.
	TrustProxy bool
}

// Check returns nil when r may proceed: it has no Origin header, or its
// origin is allowed, public, or the request's own on a host the broker
// answers to. Otherwise it returns a *broker.Error with code forbidden that
// says why.
func (p *Policy) Check(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	norm, ok := normalize(o)
	for _, a := range p.Allowed {
		if a == "*" || (ok && listed(a, norm)) {
			return nil
		}
	}
	for _, a := range p.Public {
		if ok && listed(a, norm) {
			return nil
		}
	}
	if !ok {
		return broker.Errorf(broker.CodeForbidden, "origin %q is not allowed: it is not a web origin", truncate(o))
	}
	scheme := requestScheme(r, p.TrustProxy)
	host := defaultPort(strings.ToLower(r.Host), scheme)
	if norm != scheme+"://"+host {
		return broker.Errorf(broker.CodeForbidden, "origin %s is not allowed: it is not this broker's (%s://%s), nor in allowed_origins", truncate(o), scheme, truncate(r.Host))
	}
	if !p.answersTo(host) {
		return broker.Errorf(broker.CodeForbidden, "origin %s is not allowed: the broker does not know the host %s as its own; name it in public_origins", truncate(o), truncate(r.Host))
	}
	return nil
}

// answersTo reports whether hostport, normalized, is a host the broker
// counts as its own.
func (p *Policy) answersTo(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	if lh, _, err := net.SplitHostPort(p.Listen); err == nil && lh != "" {
		if ip := net.ParseIP(lh); ip == nil || !ip.IsUnspecified() {
			if strings.EqualFold(strings.Trim(lh, "[]"), h) {
				return true
			}
		}
	}
	for _, pub := range p.Public {
		if u, err := url.Parse(pub); err == nil && strings.EqualFold(u.Hostname(), h) {
			return true
		}
	}
	return false
}

// requestScheme is the scheme the browser used to reach the broker.
func requestScheme(r *http.Request, trustProxy bool) string {
	if r.TLS != nil {
		return "https"
	}
	if trustProxy {
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if p := strings.ToLower(strings.TrimSpace(proto)); p == "https" || p == "http" {
			return p
		}
	}
	return "http"
}

// normalize turns an origin into scheme://host[:port], lower case, without
// a default port; it reports false for anything that is not an http or
// https origin (a path, user info, "null").
func normalize(o string) (string, bool) {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	return scheme + "://" + defaultPort(strings.ToLower(u.Host), scheme), true
}

// listed reports whether the listed origin a is norm, a normalized origin.
func listed(a, norm string) bool {
	n, ok := normalize(a)
	return ok && n == norm
}

// defaultPort drops the scheme's default port from host.
func defaultPort(host, scheme string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

// Valid reports whether o may be listed in Allowed or Public: "*" (Allowed
// only) or an http or https origin without a path.
func Valid(o string) bool {
	_, ok := normalize(o)
	return ok
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// Forbidden writes err, a refusal of Check, to w: 403 with its error
// envelope as a JSON body.
func Forbidden(w http.ResponseWriter, err error) {
	body := broker.ErrorFrame(broker.AsError(err))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(body)
}

// CORS returns middleware for routes that browsers call with fetch: it
// answers preflight requests and sets the CORS headers for allowed
// cross-origin requests, and refuses requests from origins that Check
// refuses with 403 and a forbidden error envelope, logging each to log.
func (p *Policy) CORS(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return p.cors(log, next)
	}
}

func (p *Policy) cors(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if o == "" {
			next.ServeHTTP(w, r)
			return
		}
		if err := p.Check(r); err != nil {
			log.Info("request refused", "method", r.Method, "path", r.URL.Path, "code", broker.CodeForbidden, "error", err)
			Forbidden(w, err)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", o)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
