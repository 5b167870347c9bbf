// Package origin checks request origins against an allow-list, for the
// WebSocket upgrade and for CORS on the HTTP transports.
package origin

import (
	"net/http"
	"net/url"
	"strings"
)

// List is an allow-list of origins such as "https://app.example.com".
// "*" allows any origin. An empty list allows the same origin only (and
// requests without an Origin header, which do not come from browsers).
type List []string

// Allowed reports whether r's origin may use the broker.
func (l List) Allowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	for _, a := range l {
		if a == "*" || strings.EqualFold(a, o) {
			return true
		}
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// CORS answers preflight requests and sets the CORS headers for allowed
// cross-origin requests; it refuses cross-origin requests from other origins
// with 403.
func (l List) CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if o == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !l.Allowed(r) {
			http.Error(w, `{"v":1,"type":"error","payload":{"code":"forbidden","message":"origin not allowed"}}`, http.StatusForbidden)
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
