package httpserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/httpserver"
)

func serveBroker(t *testing.T, bopts broker.Options, opts httpserver.Options) string {
	t.Helper()
	bopts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(bopts)
	srv := httpserver.New(b, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()); b.Close(broker.ReasonKicked) })
	return "http://" + ln.Addr().String()
}

type iceBody struct {
	ICEServers []broker.ICEServer `json:"ice_servers"`
	ICETTL     int64              `json:"ice_ttl"`
	Payload    struct {
		Code string `json:"code"`
	} `json:"payload"`
}

func getICE(t *testing.T, url string, header ...string) (int, iceBody) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header) && header[i] != ""; i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body iceBody
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, data)
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: Cache-Control %q", url, resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, body
}

func TestICEServersEndpoint(t *testing.T) {
	secret := []byte("tok")
	turnSecret := []byte("turn-secret")
	base := serveBroker(t, broker.Options{TokenSecret: secret, ICE: broker.ICE{
		Servers:    []broker.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}},
		TURNURLs:   []string{"turn:127.0.0.1:3478"},
		TURNSecret: turnSecret,
		TURNTTL:    10 * time.Minute,
	}}, httpserver.Options{})
	url := base + "/v1/ice-servers"

	// Without a token, or with a bad one, a broker with a token secret refuses.
	if code, body := getICE(t, url); code != http.StatusUnauthorized || body.Payload.Code != "unauthorized" || body.ICEServers != nil {
		t.Fatalf("no token: %d %+v", code, body)
	}
	if code, body := getICE(t, url, "Authorization", "Bearer nonsense"); code != http.StatusUnauthorized || body.ICEServers != nil {
		t.Fatalf("bad token: %d %+v", code, body)
	}
	expired, _ := broker.NewToken(secret, "demo", "alice", -time.Minute)
	if code, _ := getICE(t, url+"?token="+expired); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}

	tok, _ := broker.NewToken(secret, "demo", "alice", time.Minute)
	for _, c := range []struct{ url, header, value string }{
		{url, "Authorization", "Bearer " + tok},
		{url + "?token=" + tok, "", ""},
		{url + "?token=" + tok + "&peer=alice", "", ""},
	} {
		code, body := getICE(t, c.url, c.header, c.value)
		if code != http.StatusOK || len(body.ICEServers) != 2 || body.ICETTL != 600 {
			t.Fatalf("GET %s: %d %+v", c.url, code, body)
		}
		turn := body.ICEServers[1]
		if !strings.HasSuffix(turn.Username, ":alice") {
			t.Fatalf("TURN username %q, want the token's peer", turn.Username)
		}
		var exp int64
		_, _ = fmt.Sscan(strings.TrimSuffix(turn.Username, ":alice"), &exp)
		if _, cred := broker.TURNCredential(turnSecret, "alice", time.Unix(exp, 0)); cred != turn.Credential {
			t.Fatalf("credential %q, want %q", turn.Credential, cred)
		}
	}
	if code, body := getICE(t, url+"?token="+tok+"&peer=bob"); code != http.StatusForbidden || body.Payload.Code != "forbidden" {
		t.Fatalf("another peer's servers: %d %+v", code, body)
	}
	if code, body := getICE(t, url+"?token="+tok+"&peer=no%20spaces"); code != http.StatusBadRequest || body.Payload.Code != "bad-request" {
		t.Fatalf("bad peer id: %d %+v", code, body)
	}
	// Browsers: same origin, or one allowed; others are refused.
	if code, _ := getICE(t, url+"?token="+tok, "Origin", "https://elsewhere.example"); code != http.StatusForbidden {
		t.Fatalf("cross-origin request: %d", code)
	}
}

func TestICEServersEndpointOpen(t *testing.T) {
	// Without a token secret (and without TURN) anyone gets the static list.
	base := serveBroker(t, broker.Options{}, httpserver.Options{AllowedOrigins: []string{"https://app.example"}})
	code, body := getICE(t, base+"/v1/ice-servers?peer=carol", "Origin", "https://app.example")
	if code != http.StatusOK || body.ICEServers == nil || len(body.ICEServers) != 0 || body.ICETTL != 0 {
		t.Fatalf("open broker: %d %+v", code, body)
	}
}
