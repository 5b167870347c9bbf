package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
)

func TestICEFromFileAndEnv(t *testing.T) {
	path := writeConfig(t, `
ice:
  servers:
    - urls: ["stun:stun.example:3478"]
    - urls: ["turn:old.example:3478"]
      username: u
      credential: c
  turn:
    urls: ["turn:turn.example:3478?transport=udp", "turns:turn.example:5349"]
    secret: from-file-0123456789
    ttl: 30m
`)
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.ICE{
		Servers: []broker.ICEServer{
			{URLs: []string{"stun:stun.example:3478"}},
			{URLs: []string{"turn:old.example:3478"}, Username: "u", Credential: "c"},
		},
		TURNURLs:   []string{"turn:turn.example:3478?transport=udp", "turns:turn.example:5349"},
		TURNSecret: []byte("from-file-0123456789"),
		TURNTTL:    30 * time.Minute,
	}
	if got := c.BrokerOptions().ICE; !reflect.DeepEqual(got, want) {
		t.Fatalf("ICE from the file: %+v, want %+v", got, want)
	}

	// Every setting has its environment variable, over the file.
	c, err = config.Load(path, []string{
		"SWITCHBOARD_ICE_SERVERS=stun:a.example:3478, stun:b.example:3478",
		"SWITCHBOARD_ICE_TURN_URLS=turn:127.0.0.1:3478",
		"SWITCHBOARD_ICE_TURN_SECRET=from-env-0123456789",
		"SWITCHBOARD_ICE_TURN_TTL=2h",
	})
	if err != nil {
		t.Fatal(err)
	}
	want = broker.ICE{
		Servers:    []broker.ICEServer{{URLs: []string{"stun:a.example:3478"}}, {URLs: []string{"stun:b.example:3478"}}},
		TURNURLs:   []string{"turn:127.0.0.1:3478"},
		TURNSecret: []byte("from-env-0123456789"),
		TURNTTL:    2 * time.Hour,
	}
	if got := c.BrokerOptions().ICE; !reflect.DeepEqual(got, want) {
		t.Fatalf("ICE from the environment: %+v, want %+v", got, want)
	}
	c, err = config.Load("", []string{`SWITCHBOARD_ICE_SERVERS=[{"urls":["turn:t.example"],"username":"x","credential":"y"}]`})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BrokerOptions().ICE.Servers; len(got) != 1 || got[0].Username != "x" || got[0].Credential != "y" {
		t.Fatalf("ICE servers as JSON: %+v", got)
	}

	// Unset: no servers; the broker applies the default TTL.
	c, _ = config.Load("", nil)
	if got := c.BrokerOptions().ICE; got.Servers != nil || got.TURNURLs != nil || got.TURNSecret != nil || got.TURNTTL != 0 {
		t.Fatalf("default ICE: %+v", got)
	}
	for _, name := range []string{"SWITCHBOARD_ICE_SERVERS", "SWITCHBOARD_ICE_TURN_URLS", "SWITCHBOARD_ICE_TURN_SECRET", "SWITCHBOARD_ICE_TURN_TTL"} {
		if !strings.Contains(strings.Join(config.EnvNames(), " "), name) {
			t.Errorf("EnvNames lacks %s", name)
		}
	}
}

func TestICEBadValuesRefused(t *testing.T) {
	files := []string{
		"ice:\n  turn:\n    urls: [\"turn:t.example\"]\n",                                      // no secret
		"ice:\n  turn:\n    secret: s0123456789abcdef\n",                                       // no urls
		"ice:\n  turn:\n    urls: [\"stun:t.example\"]\n    secret: s0123456789abcdef\n",       // not a TURN URL
		"ice:\n  turn:\n    urls: [\"turn:t\"]\n    secret: s0123456789abcdef\n    ttl: 10s\n", // under the bound
		"ice:\n  turn:\n    urls: [\"turn:t\"]\n    secret: s0123456789abcdef\n    ttl: 25h\n", // over the bound
		"ice:\n  turn:\n    urls: [\"turn:t\"]\n    secret: s0123456789abcdef\n    ttl: -1m\n", // negative
		"ice:\n  turn:\n    urls: [\"turn:t\"]\n    secret: short\n",                           // a weak secret
		"ice:\n  servers:\n    - urls: []\n",                                                   // no urls
		"ice:\n  servers:\n    - urls: [\"http://x.example\"]\n",                               // not an ICE URL
		"ice:\n  servers:\n    - urls: [\"stun:\"]\n",                                          // no host
		"ice:\n  servers:\n    - url: stun:x.example\n",                                        // unknown key
		"ice:\n  servers: stun:x.example\n",                                                    // a list, not a string
	}
	for _, yaml := range files {
		if c, err := config.Load(writeConfig(t, yaml), nil); err == nil {
			t.Errorf("bad file taken:\n%s-> %+v", yaml, c.ICE)
		}
	}
	envs := [][]string{
		{"SWITCHBOARD_ICE_SERVERS=[{\"urls\":"},
		{"SWITCHBOARD_ICE_SERVERS=http://x.example"},
		{"SWITCHBOARD_ICE_TURN_TTL=1h", "SWITCHBOARD_ICE_TURN_URLS=turn:x", "SWITCHBOARD_ICE_TURN_SECRET=s0123456789abcdef", "SWITCHBOARD_ICE_TURN_TTL=48h"},
		{"SWITCHBOARD_ICE_TURN_TTL=soon"},
	}
	for _, env := range envs {
		if c, err := config.Load("", env); err == nil {
			t.Errorf("bad environment %v taken: %+v", env, c.ICE)
		}
	}
}

func TestICESecretNotInErrors(t *testing.T) {
	// The TURN secret never shows in what is printed about the configuration.
	_, err := config.Load("", []string{"SWITCHBOARD_ICE_TURN_SECRET=hush-hush-0123456789", "SWITCHBOARD_ICE_TURN_TTL=1s", "SWITCHBOARD_ICE_TURN_URLS=turn:x"})
	if err == nil || strings.Contains(err.Error(), "hush-hush-0123456789") {
		t.Fatalf("error %v", err)
	}
}
