// Package config reads the switchboard serve configuration: built-in
// defaults, then a YAML file, then SWITCHBOARD_* environment variables, then
// command-line flags, each overriding the one before.
package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/transports/origin"
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
	TokenSecret     string        `yaml:"token_secret"`     // HS256 key for join tokens, at least 32 bytes; empty: no tokens needed
	TokenMaxTTL     time.Duration `yaml:"token_max_ttl"`    // token warns when asked for a longer lifetime; default 24h, 0: never
	AllowedOrigins  []string      `yaml:"allowed_origins"`  // browser origins allowed, for transports that set none; "*" for any
	PublicOrigins   []string      `yaml:"public_origins"`   // the origins browsers reach this broker at (https://signal.example.com); default: loopback only
	TrustProxy      bool          `yaml:"trust_proxy"`      // take the request scheme from X-Forwarded-Proto (behind a TLS-terminating proxy only)
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
	// ShortSecretOK accepts a token secret under MinTokenSecret bytes, for
	// tests (the -insecure-short-secret flag). Default: refused.
	ShortSecretOK bool `yaml:"-"`
	// Warnings are what Load found odd but not wrong (a variable for a
	// transport that does not run, say); serve logs each.
	Warnings []string `yaml:"-"`

	// transportEnv holds the SWITCHBOARD_TRANSPORTS_<NAME>_<KEY> variables
	// of the environment, by transport name, then variable name.
	transportEnv map[string]map[string]string
}

// MinTokenSecret is the shortest token secret accepted, in bytes: HS256 keys
// shorter than its 256-bit hash can be guessed offline from one token.
const MinTokenSecret = 32

// DefaultTokenMaxTTL is the default of token_max_ttl.
const DefaultTokenMaxTTL = 24 * time.Hour

// otherVars are SWITCHBOARD_ variables that are no setting but are read
// elsewhere: they are not refused as unknown.
var otherVars = []string{EnvPrefix + "CONFIG", EnvPrefix + "BENCH_URL"}

// Limits bound what peers may do.
type Limits struct {
	MaxEnvelope     int     `yaml:"max_envelope"`      // bytes; default 65536
	Rate            float64 `yaml:"rate"`              // envelopes per second per session; default 1000, -1 off
	Burst           int     `yaml:"burst"`             // default 2000
	JoinRate        float64 `yaml:"join_rate"`         // joins per second per client address; default 10, -1 off
	JoinBurst       int     `yaml:"join_burst"`        // default 100
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
	NodeTTL    time.Duration `yaml:"node_ttl"`    // a silent node is dead after this; default: the resume window (at least 30s)
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
	Secret string        `yaml:"secret"` // coturn's static-auth-secret, at least MinTURNSecret bytes; never logged
	TTL    time.Duration `yaml:"ttl"`    // how long credentials are valid; default 1h, 1m to 24h
}

// Bounds of ice.turn.ttl and ice.turn.secret.
const (
	MinTURNSecret = 16 // bytes
	MinTURNTTL    = time.Minute
	MaxTURNTTL    = 24 * time.Hour
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
	if t.Secret != "" && len(t.Secret) < MinTURNSecret {
		return fmt.Errorf("config: ice.turn.secret is %d bytes; use at least %d random bytes (e.g. openssl rand -base64 32)", len(t.Secret), MinTURNSecret)
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
	return Config{Listen: ":8080", LogLevel: "info", LogFormat: "text", ShutdownTimeout: 10 * time.Second, TokenMaxTTL: DefaultTokenMaxTTL}
}

// Load reads the file at path (none if empty) over the defaults, then the
// environment env (as os.Environ gives it) over that, and validates the
// result.
func Load(path string, env []string) (Config, error) {
	c, err := Read(path, env)
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Read is Load without the validation, for a caller that sets more (flags)
// before it calls Validate. An unknown SWITCHBOARD_ variable is an error
// that names the closest known one.
func Read(path string, env []string) (Config, error) {
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
	return c, nil
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
	for _, l := range []struct {
		name string
		v    float64
	}{{"limits.rate", c.Limits.Rate}, {"limits.join_rate", c.Limits.JoinRate}} {
		if l.v < 0 && l.v != -1 {
			return fmt.Errorf("config: %s %g: want a number of envelopes per second above 0, 0 for the default, or -1 for no limit", l.name, l.v)
		}
	}
	for _, l := range []struct {
		name string
		v    int64
	}{
		{"limits.max_envelope", int64(c.Limits.MaxEnvelope)}, {"limits.burst", int64(c.Limits.Burst)}, {"limits.join_burst", int64(c.Limits.JoinBurst)},
		{"limits.peers_per_room", int64(c.Limits.PeersPerRoom)}, {"limits.sessions_per_node", int64(c.Limits.SessionsPerNode)},
		{"delivery.mailbox_messages", int64(c.Delivery.MailboxMessages)}, {"delivery.mailbox_bytes", int64(c.Delivery.MailboxBytes)},
		{"delivery.resume_window", int64(c.Delivery.ResumeWindow)}, {"delivery.offline_hold", int64(c.Delivery.OfflineHold)},
	} {
		if l.v < 0 {
			return fmt.Errorf("config: %s cannot be negative: want 0 for the default or a positive value", l.name)
		}
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < MinTokenSecret && !c.ShortSecretOK {
		return fmt.Errorf("config: token_secret is %d bytes; use at least %d random bytes (e.g. openssl rand -base64 32)", len(c.TokenSecret), MinTokenSecret)
	}
	if c.TokenMaxTTL < 0 {
		return errors.New("config: token_max_ttl cannot be negative")
	}
	for _, o := range c.PublicOrigins {
		if !origin.Valid(o) {
			return fmt.Errorf("config: public_origins: %q is not an origin such as https://signal.example.com", o)
		}
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
	for name, vars := range c.transportEnv {
		if !contains(c.TransportNames(), name) {
			for v := range vars {
				c.warn(fmt.Sprintf("%s is set, but transport %s does not run (transports: %s)", v, name, strings.Join(c.TransportNames(), ", ")))
			}
		}
	}
	return nil
}

// warn adds w to Warnings once.
func (c *Config) warn(w string) {
	if !contains(c.Warnings, w) {
		c.Warnings = append(c.Warnings, w)
		sort.Strings(c.Warnings)
	}
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

// TransportConfig returns the options of the transport registered as name
// (a pointer to its options struct, for broker.NewTransport): its section of
// the file, then its SWITCHBOARD_TRANSPORTS_<NAME>_<KEY> variables.
func (c *Config) TransportConfig(name string) (any, error) {
	opts, err := broker.NewTransportConfig(name)
	if err != nil {
		return nil, err
	}
	if node, ok := c.Transports[name]; ok && node.Kind != 0 && node.Tag != "!!null" {
		// Through text again, so that unknown keys are refused here too.
		text, err := yaml.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("config: transports.%s: %w", name, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(opts); err != nil {
			return nil, fmt.Errorf("config: transports.%s: %w", name, fileLines(err, text, &node))
		}
	}
	vars := c.transportEnv[name]
	err = walk(reflect.ValueOf(opts).Elem(), transportPrefix(name), func(v string, f reflect.Value) error {
		s, ok := vars[v]
		if !ok {
			return nil
		}
		if err := Set(f, s); err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
		return nil
	})
	return opts, err
}

// lineRE finds the line numbers in a YAML error.
var lineRE = regexp.MustCompile(`line (\d+)`)

// fileLines rewrites the line numbers in err, a YAML error about text (node
// marshalled again), to those of node's lines in the config file.
func fileLines(err error, text []byte, node *yaml.Node) error {
	var again yaml.Node
	if yaml.Unmarshal(text, &again) != nil || again.Kind != yaml.DocumentNode || len(again.Content) != 1 {
		return err
	}
	lines := map[int]int{}
	var pair func(a, b *yaml.Node)
	pair = func(a, b *yaml.Node) {
		if _, ok := lines[a.Line]; !ok {
			lines[a.Line] = b.Line
		}
		for i := 0; i < len(a.Content) && i < len(b.Content); i++ {
			pair(a.Content[i], b.Content[i])
		}
	}
	pair(again.Content[0], node)
	msg := lineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		if l, ok := lines[n]; ok {
			return "line " + strconv.Itoa(l)
		}
		return m
	})
	return errors.New(msg)
}

// TransportOptions returns the node-wide settings every transport gets.
func (c *Config) TransportOptions() broker.TransportOptions {
	o := broker.TransportOptions{AllowedOrigins: append([]string(nil), c.AllowedOrigins...),
		PublicOrigins: append([]string(nil), c.PublicOrigins...), Listen: c.Listen, TrustProxy: c.TrustProxy}
	if c.Cluster.Enabled() {
		o.Redis = broker.RedisOptions{URL: c.Cluster.RedisURL, Addrs: append([]string(nil), c.Cluster.RedisAddrs...), MasterName: c.Cluster.MasterName}
	}
	return o
}

// transportPrefix starts the variables of transport name's settings:
// SWITCHBOARD_TRANSPORTS_<NAME>_.
func transportPrefix(name string) string {
	return EnvPrefix + "TRANSPORTS_" + envWord(name) + "_"
}

func envWord(s string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(s))
}

// BrokerOptions maps the configuration onto the broker's options.
func (c *Config) BrokerOptions() broker.Options {
	return broker.Options{
		NodeID:          c.NodeID,
		TokenSecret:     []byte(c.TokenSecret),
		MaxEnvelope:     c.Limits.MaxEnvelope,
		Rate:            c.Limits.Rate,
		Burst:           c.Limits.Burst,
		JoinRate:        c.Limits.JoinRate,
		JoinBurst:       c.Limits.JoinBurst,
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

// applyEnv sets every field whose SWITCHBOARD_ variable is in env, and
// keeps the transports' variables for TransportConfig. A SWITCHBOARD_
// variable that is no setting is an error.
func applyEnv(c *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	known := map[string]string{} // variable: transport, or "" for the top level
	for _, v := range topEnvNames() {
		known[v] = ""
	}
	for _, t := range broker.Transports() {
		for _, v := range TransportEnvNames(t) {
			known[v] = t
		}
	}
	var unknown []string
	for k := range vars {
		if _, ok := known[k]; !ok && !contains(otherVars, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names := append(slices.Collect(maps.Keys(known)), otherVars...)
		var msgs []string
		for _, k := range unknown {
			msg := k
			if near := closest(k, names); near != "" {
				msg += " (did you mean " + near + "?)"
			}
			msgs = append(msgs, msg)
		}
		return fmt.Errorf("config: unknown environment variable %s; 'switchboard serve -h' lists them all", strings.Join(msgs, ", "))
	}
	for k, v := range vars {
		if t := known[k]; t != "" {
			if c.transportEnv == nil {
				c.transportEnv = map[string]map[string]string{}
			}
			if c.transportEnv[t] == nil {
				c.transportEnv[t] = map[string]string{}
			}
			c.transportEnv[t][k] = v
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

// EnvNames lists every environment variable that overrides a setting: the
// top level's, then those of every registered transport.
func EnvNames() []string {
	names := topEnvNames()
	for _, t := range broker.Transports() {
		names = append(names, TransportEnvNames(t)...)
	}
	return names
}

func topEnvNames() []string {
	var names []string
	var c Config
	_ = walk(reflect.ValueOf(&c).Elem(), EnvPrefix, func(name string, _ reflect.Value) error {
		names = append(names, name)
		return nil
	})
	return append(names, EnvPrefix+"TRANSPORTS")
}

// TransportEnvNames lists the variables of the settings of the transport
// registered as name: SWITCHBOARD_TRANSPORTS_<NAME>_<KEY>, one for each
// field of its options struct (by yaml key; nested structs add _<KEY>).
func TransportEnvNames(name string) []string {
	opts, err := broker.NewTransportConfig(name)
	if err != nil {
		return nil
	}
	var names []string
	_ = walk(reflect.ValueOf(opts).Elem(), transportPrefix(name), func(v string, _ reflect.Value) error {
		names = append(names, v)
		return nil
	})
	return names
}

// walk calls fn with the environment name of every leaf setting in v, a
// struct: each exported field by its yaml key (the field's name in lower
// case when it has none), inline fields as if they were v's own, nested
// structs (but time.Duration and the like) field by field.
func walk(v reflect.Value, prefix string, fn func(string, reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if tag == "-" || (prefix == EnvPrefix && tag == "transports") {
			continue
		}
		f := v.Field(i)
		if strings.Contains(","+opts+",", ",inline,") {
			if f.Kind() == reflect.Struct {
				if err := walk(f, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(sf.Name)
		}
		name := prefix + envWord(tag)
		if f.Kind() == reflect.Struct && f.NumField() > 0 && !settable(f) {
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

// settable reports whether a struct f is one setting rather than a section:
// it reads itself from YAML or text.
func settable(f reflect.Value) bool {
	p := f.Addr().Interface()
	_, y := p.(yaml.Unmarshaler)
	_, t := p.(encoding.TextUnmarshaler)
	return y || t
}

// closest returns the name in names nearest to s (by edit distance), or ""
// when none is near.
func closest(s string, names []string) string {
	best, bestD := "", len(s)/3+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Set parses s into the setting f by its type: a duration as "90s", "10m"
// or "1h"; a list of strings comma separated; numbers and booleans as Go
// writes them; anything else as YAML ("[{urls: [stun:x]}]", say).
func Set(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is no duration: durations look like 90s, 10m, 1h", s)
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
	case f.CanInt():
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case f.CanUint():
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetUint(n)
	case f.CanFloat():
		n, err := strconv.ParseFloat(s, f.Type().Bits())
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
		if !f.CanAddr() {
			return fmt.Errorf("config: cannot set a %s", f.Type())
		}
		if err := yaml.Unmarshal([]byte(s), f.Addr().Interface()); err != nil {
			return fmt.Errorf("want YAML for a %s: %w", f.Type(), err)
		}
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
