// Package config reads the switchboard serve configuration: built-in
// defaults, then a YAML file, then SWITCHBOARD_* environment variables, then
// command-line flags, each overriding the one before.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/broker"
)

// EnvPrefix starts every environment variable that overrides a setting: the
// setting's YAML path in upper case, joined by underscores, e.g.
// SWITCHBOARD_LIMITS_MAX_ENVELOPE.
const EnvPrefix = "SWITCHBOARD_"

// Config is everything serve needs. Durations are written as "30s", "1m".
type Config struct {
	Listen          string        `yaml:"listen"`           // HTTP listen address; default ":8080"
	LogLevel        string        `yaml:"log_level"`        // debug, info, warn or error; default info
	LogFormat       string        `yaml:"log_format"`       // text or json; default text
	LogEnvelopes    bool          `yaml:"log_envelopes"`    // log every envelope at debug level
	Pprof           bool          `yaml:"pprof"`            // serve /debug/pprof/
	TokenSecret     string        `yaml:"token_secret"`     // HS256 key for join tokens; empty: no tokens needed
	AllowedOrigins  []string      `yaml:"allowed_origins"`  // browser origins allowed, for transports that set none; "*" for any
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // how long shutdown may drain; default 10s
	NodeID          string        `yaml:"node_id"`          // this node's name in a cluster; default random
	Limits          Limits        `yaml:"limits"`
	Delivery        Delivery      `yaml:"delivery"`
	Cluster         Cluster       `yaml:"cluster"`
	ICE             ICE           `yaml:"ice"`
	// Transports picks the transports to run and configures each, by
	// registered name. Default: websocket and longpoll.
	Transports map[string]yaml.Node `yaml:"transports"`
	// Enabled, when set (SWITCHBOARD_TRANSPORTS or --transports, comma
	// separated), runs only these of the transports.
	Enabled []string `yaml:"-"`
}

// Limits bound what peers may do.
type Limits struct {
	MaxEnvelope     int     `yaml:"max_envelope"`      // bytes; default 65536
	Rate            float64 `yaml:"rate"`              // envelopes per second per session; default 1000, -1 off
	Burst           int     `yaml:"burst"`             // default 2000
	PeersPerRoom    int     `yaml:"peers_per_room"`    // default 256
	SessionsPerNode int     `yaml:"sessions_per_node"` // default 100000
}

// Delivery sets the mailbox bounds and the hold times (docs/protocol.md, section 4).
type Delivery struct {
	MailboxMessages int           `yaml:"mailbox_messages"` // default 1024
	MailboxBytes    int           `yaml:"mailbox_bytes"`    // default 1048576
	ResumeWindow    time.Duration `yaml:"resume_window"`    // default 30s
	OfflineHold     time.Duration `yaml:"offline_hold"`     // default 10s
}

// Cluster makes this node one of several that act as one broker, through
// Redis: presence and events on a backplane, sessions and mailboxes in a
// store, so that a session outlives its node. Unset: a single node.
type Cluster struct {
	RedisURL   string        `yaml:"redis_url"`   // one Redis: redis://host:6379/0
	RedisAddrs []string      `yaml:"redis_addrs"` // or a Redis Cluster's seed nodes, or Sentinels with master_name
	MasterName string        `yaml:"master_name"` // the Sentinels' primary
	Prefix     string        `yaml:"prefix"`      // key and channel prefix; default "switchboard"
	NodeTTL    time.Duration `yaml:"node_ttl"`    // a silent node is dead after this; default: the resume window (at least 15s)
}

func (c Cluster) validate() error {
	if c.RedisURL != "" && len(c.RedisAddrs) > 0 {
		return errors.New("config: cluster: set redis_url or redis_addrs, not both")
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return fmt.Errorf("config: cluster.redis_url %q: want redis://host:port/db (or rediss://, unix://)", c.RedisURL)
		}
	}
	for _, a := range c.RedisAddrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("config: cluster.redis_addrs: %q is not host:port", a)
		}
	}
	for _, r := range c.Prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return fmt.Errorf("config: cluster.prefix %q: use A-Z a-z 0-9 . _ : -", c.Prefix)
		}
	}
	if c.MasterName != "" && len(c.RedisAddrs) == 0 {
		return errors.New("config: cluster.master_name needs redis_addrs (the Sentinels)")
	}
	return nil
}

// ICE is the STUN and TURN servers handed to every peer (docs/protocol.md,
// section 6, ICE servers).
type ICE struct {
	// Servers are handed out as they are. In the environment
	// (SWITCHBOARD_ICE_SERVERS): a JSON array of them, or comma-separated
	// URLs, one server each.
	Servers []ICEServer `yaml:"servers"`
	TURN    TURN        `yaml:"turn"`
}

// ICEServer is one static STUN or TURN server, as RTCIceServer has it.
type ICEServer struct {
	URLs       []string `yaml:"urls" json:"urls"`
	Username   string   `yaml:"username" json:"username"`
	Credential string   `yaml:"credential" json:"credential"`
}

// TURN is TURN servers that take credentials of the TURN REST API scheme,
// minted per peer with a secret they share with the broker (coturn's
// use-auth-secret and static-auth-secret).
type TURN struct {
	URLs   []string      `yaml:"urls"`   // turn: and turns: URLs
	Secret string        `yaml:"secret"` // coturn's static-auth-secret; never logged
	TTL    time.Duration `yaml:"ttl"`    // how long credentials are valid; default 1h, 1m to 24h
}

// Bounds of ice.turn.ttl.
const (
	MinTURNTTL = time.Minute
	MaxTURNTTL = 24 * time.Hour
)

func (c ICE) validate() error {
	for i, s := range c.Servers {
		if len(s.URLs) == 0 {
			return fmt.Errorf("config: ice.servers[%d] has no urls", i)
		}
		if err := iceURLs(fmt.Sprintf("ice.servers[%d]", i), s.URLs); err != nil {
			return err
		}
	}
	t := c.TURN
	if len(t.URLs) > 0 && t.Secret == "" {
		return errors.New("config: ice.turn.urls needs ice.turn.secret (the TURN servers' static-auth-secret)")
	}
	if t.Secret != "" && len(t.URLs) == 0 {
		return errors.New("config: ice.turn.secret needs ice.turn.urls")
	}
	if t.TTL != 0 && (t.TTL < MinTURNTTL || t.TTL > MaxTURNTTL) {
		return fmt.Errorf("config: ice.turn.ttl %v: want %v to %v", t.TTL, MinTURNTTL, MaxTURNTTL)
	}
	for _, u := range t.URLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("config: ice.turn.urls: %q is not a turn: or turns: URL", u)
		}
	}
	return iceURLs("ice.turn", t.URLs)
}

func iceURLs(where string, urls []string) error {
	for _, u := range urls {
		scheme, rest, _ := strings.Cut(u, ":")
		switch scheme {
		case "stun", "stuns", "turn", "turns":
		default:
			return fmt.Errorf("config: %s: %q is not a stun:, stuns:, turn: or turns: URL", where, u)
		}
		if rest == "" || strings.ContainsAny(u, " \t\r\n") {
			return fmt.Errorf("config: %s: %q has no host", where, u)
		}
	}
	return nil
}

// Broker returns the broker's ICE options.
func (c ICE) Broker() broker.ICE {
	out := broker.ICE{TURNURLs: c.TURN.URLs, TURNTTL: c.TURN.TTL}
	if c.TURN.Secret != "" {
		out.TURNSecret = []byte(c.TURN.Secret)
	}
	for _, s := range c.Servers {
		out.Servers = append(out.Servers, broker.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// Enabled reports whether cluster mode is configured.
func (c Cluster) Enabled() bool { return c.RedisURL != "" || len(c.RedisAddrs) > 0 }

// DefaultTransports run when the configuration names none: those that need
// no outside server.
var DefaultTransports = []string{"websocket", "longpoll"}

// Default returns the built-in configuration.
func Default() Config {
	return Config{Listen: ":8080", LogLevel: "info", LogFormat: "text", ShutdownTimeout: 10 * time.Second}
}

// Load reads the file at path (none if empty) over the defaults, then the
// environment env (as os.Environ gives it) over that.
func Load(path string, env []string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, env); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks the settings that cannot be checked by their types.
func (c *Config) Validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("config: log_format %q: want text or json", c.LogFormat)
	}
	if c.Limits.MaxEnvelope < 0 || c.Limits.Burst < 0 || c.Limits.PeersPerRoom < 0 || c.Limits.SessionsPerNode < 0 ||
		c.Delivery.MailboxMessages < 0 || c.Delivery.MailboxBytes < 0 || c.Delivery.ResumeWindow < 0 || c.Delivery.OfflineHold < 0 {
		return errors.New("config: limits and delivery settings cannot be negative")
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.ICE.validate(); err != nil {
		return err
	}
	for _, name := range c.TransportNames() {
		if !contains(broker.Transports(), name) {
			return fmt.Errorf("config: unknown transport %q (available: %s)", name, strings.Join(broker.Transports(), ", "))
		}
	}
	return nil
}

// TransportNames lists the transports to run, sorted.
func (c *Config) TransportNames() []string {
	var names []string
	switch {
	case len(c.Enabled) > 0:
		names = append(names, c.Enabled...)
	case len(c.Transports) > 0:
		for n := range c.Transports {
			names = append(names, n)
		}
	default:
		names = append(names, DefaultTransports...)
	}
	sort.Strings(names)
	return names
}

// TransportDecoder returns the function that fills a transport's options
// from its section, with AllowedOrigins defaulting to the top-level list.
func (c *Config) TransportDecoder(name string) func(v any) error {
	return func(v any) error {
		if node, ok := c.Transports[name]; ok && node.Kind != 0 && node.Tag != "!!null" {
			// Through text again, so that unknown keys are refused here too.
			text, err := yaml.Marshal(&node)
			if err != nil {
				return fmt.Errorf("config: transports.%s: %w", name, err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(text))
			dec.KnownFields(true)
			if err := dec.Decode(v); err != nil {
				return fmt.Errorf("config: transports.%s: %w", name, err)
			}
		}
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct {
			if f := rv.Elem().FieldByName("AllowedOrigins"); f.IsValid() && f.Kind() == reflect.Slice && f.Len() == 0 && len(c.AllowedOrigins) > 0 {
				f.Set(reflect.ValueOf(append([]string(nil), c.AllowedOrigins...)))
			}
			// A transport on Redis (url, addrs) defaults to the cluster's Redis.
			url, addrs := rv.Elem().FieldByName("URL"), rv.Elem().FieldByName("Addrs")
			if url.IsValid() && addrs.IsValid() && url.Kind() == reflect.String && addrs.Kind() == reflect.Slice &&
				url.String() == "" && addrs.Len() == 0 && c.Cluster.Enabled() {
				url.SetString(c.Cluster.RedisURL)
				addrs.Set(reflect.ValueOf(append([]string(nil), c.Cluster.RedisAddrs...)))
				if mn := rv.Elem().FieldByName("MasterName"); mn.IsValid() && mn.Kind() == reflect.String && mn.String() == "" {
					mn.SetString(c.Cluster.MasterName)
				}
			}
		}
		return nil
	}
}

// BrokerOptions maps the configuration onto the broker's options.
func (c *Config) BrokerOptions() broker.Options {
	return broker.Options{
		NodeID:          c.NodeID,
		TokenSecret:     []byte(c.TokenSecret),
		MaxEnvelope:     c.Limits.MaxEnvelope,
		Rate:            c.Limits.Rate,
		Burst:           c.Limits.Burst,
		MaxPeersPerRoom: c.Limits.PeersPerRoom,
		MaxSessions:     c.Limits.SessionsPerNode,
		MailboxMessages: c.Delivery.MailboxMessages,
		MailboxBytes:    c.Delivery.MailboxBytes,
		ResumeWindow:    c.Delivery.ResumeWindow,
		OfflineHold:     c.Delivery.OfflineHold,
		LogEnvelopes:    c.LogEnvelopes,
		ICE:             c.ICE.Broker(),
	}
}

// applyEnv sets every field whose SWITCHBOARD_ variable is in env.
func applyEnv(c *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	if v, ok := vars[EnvPrefix+"TRANSPORTS"]; ok {
		c.Enabled = SplitList(v)
	}
	return walk(reflect.ValueOf(c).Elem(), EnvPrefix, func(name string, f reflect.Value) error {
		v, ok := vars[name]
		if !ok {
			return nil
		}
		if err := Set(f, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// EnvNames lists every environment variable that overrides a setting.
func EnvNames() []string {
	var names []string
	var c Config
	_ = walk(reflect.ValueOf(&c).Elem(), EnvPrefix, func(name string, _ reflect.Value) error {
		names = append(names, name)
		return nil
	})
	return append(names, EnvPrefix+"TRANSPORTS")
}

// walk calls fn with the environment name of every leaf setting in v.
func walk(v reflect.Value, prefix string, fn func(string, reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || tag == "transports" {
			continue
		}
		name := prefix + strings.ToUpper(tag)
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			if err := walk(f, name+"_", fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(name, f); err != nil {
			return err
		}
	}
	return nil
}

// Set parses s into the setting f by its type.
func Set(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		f.Set(reflect.ValueOf(SplitList(s)))
	case f.Type() == reflect.TypeOf([]ICEServer(nil)):
		var servers []ICEServer
		if strings.HasPrefix(strings.TrimSpace(s), "[") {
			if err := json.Unmarshal([]byte(s), &servers); err != nil {
				return fmt.Errorf("config: want a JSON array of {urls, username, credential}: %w", err)
			}
		} else {
			for _, u := range SplitList(s) {
				servers = append(servers, ICEServer{URLs: []string{u}})
			}
		}
		f.Set(reflect.ValueOf(servers))
	default:
		return fmt.Errorf("config: cannot set a %s from text", f.Type())
	}
	return nil
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
