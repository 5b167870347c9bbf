package redisconn

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
)

func TestRedisOptions(t *testing.T) {
	for _, tc := range []struct {
		url, config    string
		addr, prefix   string
		db             int
		tls, refuse    bool
		user, password string
		readTimeout    time.Duration
	}{
		{url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379", prefix: "switchboard"},
		{url: "redis://127.0.0.1:6379/2?prefix=tenant", addr: "127.0.0.1:6379", db: 2, prefix: "tenant"},
		{url: "redis://h:1/0?prefix=tenant:", config: "other", addr: "h:1", prefix: "tenant"},
		{url: "redis://h:1", config: "other", addr: "h:1", prefix: "other"},
		{url: "redis://svc:secret@h:1/3?prefix=p&read_timeout=5s", addr: "h:1", db: 3, prefix: "p", user: "svc", password: "secret", readTimeout: 5 * time.Second},
		{url: "rediss://h:1/0", addr: "h:1", prefix: "switchboard", tls: true},
		{url: "http://h:1/", refuse: true},
		{url: "redis://h:1/0?bogus=1", refuse: true},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		o, prefix, err := redisOptions(u, Config{Prefix: tc.config}, &switchboard.Options{})
		if tc.refuse {
			if err == nil {
				t.Errorf("%s: accepted", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if o.Addr != tc.addr || prefix != tc.prefix || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls ||
			o.Username != tc.user || o.Password != tc.password || o.Dialer == nil {
			t.Errorf("%s: addr %q prefix %q db %d tls %v user %q password %q", tc.url, o.Addr, prefix, o.DB, o.TLSConfig != nil, o.Username, o.Password)
		}
		if tc.readTimeout != 0 && o.ReadTimeout != tc.readTimeout {
			t.Errorf("%s: read timeout %v", tc.url, o.ReadTimeout)
		}
	}
}

func TestEnvelopeWithSession(t *testing.T) {
	data, err := json.Marshal(outbound{
		Envelope: switchboard.Envelope{V: 1, Type: "message", To: "bob", ID: "x-1", Payload: json.RawMessage(`{"a":1}`)},
		Session:  "0123",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"type":"message","id":"x-1","to":"bob","payload":{"a":1},"session":"0123"}`; string(data) != want {
		t.Fatalf("got %s, want %s", data, want)
	}
	if !pingMarker.Is(json.RawMessage(`{"switchboard_redis_keepalive":true}`)) || pingMarker.Is(json.RawMessage(`{"switchboard_confirm":3}`)) || pingMarker.Is(nil) {
		t.Fatal("pingMarker.Is")
	}
}
