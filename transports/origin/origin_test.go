package origin_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
)

func TestCheck(t *testing.T) {
	public := origin.Policy{Public: []string{"https://signal.example.com"}}
	cases := []struct {
		name       string
		p          origin.Policy
		origin     string
		host       string
		tls        bool
		forwarded  string
		wantPassed bool
	}{
		{"no origin", origin.Policy{}, "", "evil.example", false, "", true},
		{"loopback address", origin.Policy{}, "http://127.0.0.1:8080", "127.0.0.1:8080", false, "", true},
		{"localhost", origin.Policy{}, "http://localhost:8080", "localhost:8080", false, "", true},
		{"localhost, any case", origin.Policy{}, "http://LocalHost:8080", "localhost:8080", false, "", true},
		{"IPv6 loopback", origin.Policy{}, "http://[::1]:8080", "[::1]:8080", false, "", true},
		{"default port", origin.Policy{}, "http://localhost", "localhost:80", false, "", true},
		{"DNS rebinding", origin.Policy{}, "http://evil.example", "evil.example", false, "", false},
		{"DNS rebinding with a port", origin.Policy{}, "http://evil.example:8080", "evil.example:8080", false, "", false},
		{"another port", origin.Policy{}, "http://localhost:9090", "localhost:8080", false, "", false},
		{"https page, plain http request", origin.Policy{}, "https://localhost:8080", "localhost:8080", false, "", false},
		{"http page, TLS request", origin.Policy{}, "http://localhost:8443", "localhost:8443", true, "", false},
		{"https over TLS", origin.Policy{}, "https://localhost:8443", "localhost:8443", true, "", true},
		{"forwarded https, proxy not trusted", origin.Policy{}, "https://localhost", "localhost", false, "https", false},
		{"forwarded https, proxy trusted", origin.Policy{TrustProxy: true}, "https://localhost", "localhost", false, "https", true},
		{"null", origin.Policy{}, "null", "localhost", false, "", false},
		{"public origin, behind a proxy", public, "https://signal.example.com", "signal.example.com", false, "", true},
		{"public origin, another Host", public, "https://signal.example.com", "10.0.0.5:8080", false, "", true},
		{"public host, its own scheme", public, "http://signal.example.com", "signal.example.com", false, "", true},
		{"public host, scheme mismatch", public, "https://signal.example.com:8443", "signal.example.com:8443", false, "", false},
		{"not public", public, "https://evil.example", "evil.example", true, "", false},
		{"listen host", origin.Policy{Listen: "10.0.0.5:8080"}, "http://10.0.0.5:8080", "10.0.0.5:8080", false, "", true},
		{"wildcard listen", origin.Policy{Listen: "0.0.0.0:8080"}, "http://10.0.0.5:8080", "10.0.0.5:8080", false, "", false},
		{"empty listen host", origin.Policy{Listen: ":8080"}, "http://10.0.0.5:8080", "10.0.0.5:8080", false, "", false},
		{"allowed", origin.Policy{Allowed: []string{"https://app.example"}}, "https://APP.example:443", "signal.example.com", false, "", true},
		{"not allowed", origin.Policy{Allowed: []string{"https://app.example"}}, "http://app.example", "signal.example.com", false, "", false},
		{"any", origin.Policy{Allowed: []string{"*"}}, "https://evil.example", "signal.example.com", false, "", true},
		{"any, not even an origin", origin.Policy{Allowed: []string{"*"}}, "null", "signal.example.com", false, "", true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "http://x/v1/ws", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.forwarded != "" {
			r.Header.Set("X-Forwarded-Proto", c.forwarded)
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		err := c.p.Check(r)
		if (err == nil) != c.wantPassed {
			t.Errorf("%s: Check = %v, want passed %v", c.name, err, c.wantPassed)
		}
		var pe *broker.Error
		if err != nil && (!errors.As(err, &pe) || pe.Code != broker.CodeForbidden) {
			t.Errorf("%s: Check = %#v, want a forbidden *broker.Error", c.name, err)
		}
	}
}

func TestCORSRefusalIsJSON(t *testing.T) {
	p := origin.Policy{}
	h := p.CORS(slog.New(slog.DiscardHandler))(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	r := httptest.NewRequest("POST", "http://evil.example/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Origin", "http://evil.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"code":"forbidden"`) {
		t.Fatalf("refusal: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

func TestValid(t *testing.T) {
	for o, want := range map[string]bool{
		"https://signal.example.com":      true,
		"http://localhost:8080":           true,
		"https://signal.example.com/":     true,
		"https://signal.example.com/path": false,
		"signal.example.com":              false,
		"ftp://signal.example.com":        false,
		"":                                false,
	} {
		if got := origin.Valid(o); got != want {
			t.Errorf("Valid(%q) = %v, want %v", o, got, want)
		}
	}
}
