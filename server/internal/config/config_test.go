package config_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
	"github.com/switchboard-rtc/switchboard/transports/longpoll"
	"github.com/switchboard-rtc/switchboard/transports/origin"
	"github.com/switchboard-rtc/switchboard/transports/redis"
	_ "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// fakeName is a transport registered by this test only.
const fakeName = "configtest-fake"

// fakeOptions are the fake transport's options, shaped as real ones are.
type fakeOptions struct {
	AllowedOrigins []string      `yaml:"allowed_origins"`
	Depth          int           `yaml:"depth"`
	Timeout        time.Duration `yaml:"timeout"`
}

type fakeTransport struct{ opts fakeOptions }

func (*fakeTransport) Name() string                                    { return fakeName }
func (*fakeTransport) Run(ctx context.Context, _ *broker.Broker) error { <-ctx.Done(); return nil }

func init() {
	broker.Register(fakeName, func(o fakeOptions, shared broker.TransportOptions) (broker.Transport, error) {
		if len(o.AllowedOrigins) == 0 {
			o.AllowedOrigins = shared.AllowedOrigins
		}
		return &fakeTransport{o}, nil
	})
}

// newTransport makes transport name as the node does.
func newTransport(c config.Config, name string) (broker.Transport, error) {
	opts, err := c.TransportConfig(name)
	if err != nil {
		return nil, err
	}
	return broker.NewTransport(name, opts, c.TransportOptions())
}

// writeConfig writes yaml to a file of the test's and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	c, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load with nothing = %+v, want %+v", c, want)
	}
	if c.Listen != ":8080" || c.LogLevel != "info" || c.LogFormat != "text" || c.ShutdownTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.TransportNames(); !slices.Equal(got, []string{"longpoll", "websocket"}) {
		t.Fatalf("default transports %v", got)
	}
	// Zero limits map to zero broker options, which the broker fills with its defaults.
	o := c.BrokerOptions()
	if o.MaxEnvelope != 0 || o.ResumeWindow != 0 || len(o.TokenSecret) != 0 {
		t.Fatalf("broker options from defaults: %+v", o)
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(o)
	defer b.Close(broker.ReasonKicked)
	bo := b.Options()
	if bo.MaxEnvelope != 64<<10 || bo.ResumeWindow != 30*time.Second || bo.OfflineHold != 10*time.Second ||
		bo.MailboxMessages != 1024 || bo.MailboxBytes != 1<<20 {
		t.Fatalf("broker defaults: %+v", bo)
	}
	// Environment variables of others, and empty files, change nothing.
	c, err = config.Load(writeConfig(t, ""), []string{"HOME=/root", "SWITCHBOARDX=1", "PATH=/bin"})
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func TestFileOverrides(t *testing.T) {
	path := writeConfig(t, `
listen: 127.0.0.1:9000
log_level: debug
log_format: json
log_envelopes: true
pprof: true
token_secret: s3cret-of-at-least-thirty-two-bytes
allowed_origins: [https://a.example, https://b.example]
shutdown_timeout: 3s
node_id: n7
limits:
  max_envelope: 1000
  rate: -1
  burst: 5
  peers_per_room: 4
  sessions_per_node: 9
delivery:
  mailbox_messages: 16
  mailbox_bytes: 4096
  resume_window: 1m
  offline_hold: 1500ms
transports:
  longpoll:
    idle_timeout: 20s
  websocket: {}
`)
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.LogLevel != "debug" || c.LogFormat != "json" || !c.LogEnvelopes || !c.Pprof ||
		c.TokenSecret != "s3cret-of-at-least-thirty-two-bytes" || !slices.Equal(c.AllowedOrigins, []string{"https://a.example", "https://b.example"}) ||
		c.ShutdownTimeout != 3*time.Second || c.NodeID != "n7" {
		t.Fatalf("top level: %+v", c)
	}
	wantLimits := config.Limits{MaxEnvelope: 1000, Rate: -1, Burst: 5, PeersPerRoom: 4, SessionsPerNode: 9}
	wantDelivery := config.Delivery{MailboxMessages: 16, MailboxBytes: 4096, ResumeWindow: time.Minute, OfflineHold: 1500 * time.Millisecond}
	if c.Limits != wantLimits || c.Delivery != wantDelivery {
		t.Fatalf("limits %+v delivery %+v", c.Limits, c.Delivery)
	}
	if got := c.TransportNames(); !slices.Equal(got, []string{"longpoll", "websocket"}) {
		t.Fatalf("transports %v", got)
	}
	o := c.BrokerOptions()
	want := broker.Options{NodeID: "n7", TokenSecret: []byte("s3cret-of-at-least-thirty-two-bytes"), MaxEnvelope: 1000, Rate: -1, Burst: 5,
		MaxPeersPerRoom: 4, MaxSessions: 9, MailboxMessages: 16, MailboxBytes: 4096, ResumeWindow: time.Minute,
		OfflineHold: 1500 * time.Millisecond, LogEnvelopes: true}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("BrokerOptions = %+v, want %+v", o, want)
	}
	// A file that names only some transports runs only those.
	c, err = config.Load(writeConfig(t, "transports:\n  longpoll: {}\n"), nil)
	if err != nil || !slices.Equal(c.TransportNames(), []string{"longpoll"}) {
		t.Fatalf("one transport: %v, %v", c.TransportNames(), err)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeConfig(t, `
listen: :9000
allowed_origins: [https://file.example]
limits:
  max_envelope: 1000
delivery:
  resume_window: 1m
  offline_hold: 2s
transports:
  longpoll: {}
  websocket: {}
`)
	env := []string{
		"SWITCHBOARD_LISTEN=:7000",
		"SWITCHBOARD_LIMITS_MAX_ENVELOPE=2048",
		"SWITCHBOARD_DELIVERY_RESUME_WINDOW=45s",
		"SWITCHBOARD_TRANSPORTS=websocket",
		"SWITCHBOARD_ALLOWED_ORIGINS=a,b",
		"SWITCHBOARD_LIMITS_RATE=2.5",
		"SWITCHBOARD_LOG_ENVELOPES=true",
		"SWITCHBOARD_TOKEN_SECRET=x=y=z-and-more-to-make-thirty-two", // a value may hold '='
		"UNRELATED=1",
	}
	c, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7000" || c.Limits.MaxEnvelope != 2048 || c.Delivery.ResumeWindow != 45*time.Second ||
		!slices.Equal(c.AllowedOrigins, []string{"a", "b"}) || c.Limits.Rate != 2.5 || !c.LogEnvelopes || c.TokenSecret != "x=y=z-and-more-to-make-thirty-two" {
		t.Fatalf("env over file: %+v", c)
	}
	if c.Delivery.OfflineHold != 2*time.Second {
		t.Fatalf("a setting without a variable lost its file value: %v", c.Delivery.OfflineHold)
	}
	if got := c.TransportNames(); !slices.Equal(got, []string{"websocket"}) {
		t.Fatalf("SWITCHBOARD_TRANSPORTS=websocket runs %v", got)
	}
	// Lists drop blanks and spaces.
	c, err = config.Load("", []string{"SWITCHBOARD_ALLOWED_ORIGINS= a , ,b ,", "SWITCHBOARD_TRANSPORTS=longpoll, websocket"})
	if err != nil || !slices.Equal(c.AllowedOrigins, []string{"a", "b"}) || !slices.Equal(c.TransportNames(), []string{"longpoll", "websocket"}) {
		t.Fatalf("lists: %v %v, %v", c.AllowedOrigins, c.TransportNames(), err)
	}
}

func TestEnvNames(t *testing.T) {
	names := config.EnvNames()
	for _, want := range []string{"SWITCHBOARD_LISTEN", "SWITCHBOARD_LIMITS_MAX_ENVELOPE", "SWITCHBOARD_DELIVERY_RESUME_WINDOW",
		"SWITCHBOARD_TRANSPORTS", "SWITCHBOARD_ALLOWED_ORIGINS", "SWITCHBOARD_TOKEN_SECRET", "SWITCHBOARD_DELIVERY_OFFLINE_HOLD",
		"SWITCHBOARD_LIMITS_SESSIONS_PER_NODE", "SWITCHBOARD_NODE_ID"} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames lacks %s: %v", want, names)
		}
	}
	// Every name listed is one Load reads: garbage in any setting that is
	// not free text is refused.
	freeText := map[string]bool{"SWITCHBOARD_LISTEN": true, "SWITCHBOARD_TOKEN_SECRET": true,
		"SWITCHBOARD_NODE_ID": true, "SWITCHBOARD_ALLOWED_ORIGINS": true}
	for _, name := range names {
		_, err := config.Load("", []string{name + "=not a number, a duration or a name"})
		if rest, ok := strings.CutPrefix(name, "SWITCHBOARD_TRANSPORTS_"); ok && err == nil {
			// A transport's setting is read when the transport is made.
			for _, tn := range broker.Transports() {
				if prefix := strings.ToUpper(strings.ReplaceAll(tn, "-", "_")) + "_"; strings.HasPrefix(rest, prefix) {
					var c config.Config
					c, err = config.Load("", []string{name + "=not a number, a duration or a name", "SWITCHBOARD_TRANSPORTS=" + tn})
					if err == nil {
						_, err = c.TransportConfig(tn)
					}
				}
			}
			// Only the transports' numbers, durations and switches refuse text.
			freeText[name] = !strings.Contains(name, "TIMEOUT") && !strings.Contains(name, "INTERVAL") &&
				!strings.HasSuffix(name, "_AFTER") && !strings.HasSuffix(name, "_TLS") && !strings.HasSuffix(name, "_DEPTH")
		}
		if freeText[name] != (err == nil) {
			t.Errorf("%s=garbage: %v", name, err)
		}
	}
}

func TestUnknownYAMLKeysRefused(t *testing.T) {
	for _, yaml := range []string{
		"listne: :9000\n",
		"limits:\n  max_envelop: 5\n",
		"delivery:\n  resume: 5s\n",
		"transports: {}\nextra: 1\n",
	} {
		if _, err := config.Load(writeConfig(t, yaml), nil); err == nil {
			t.Errorf("unknown key taken:\n%s", yaml)
		}
	}
}

// TestUnknownTransportKeysRefused checks that a misspelt option inside a
// transport's section is refused as one at the top level is, rather than
// silently ignored.
func TestUnknownTransportKeysRefused(t *testing.T) {
	c, err := config.Load(writeConfig(t, "transports:\n  "+fakeName+":\n    depht: 3\n"), nil)
	if err != nil {
		return // refused at load: fine
	}
	if _, err := newTransport(c, fakeName); err == nil {
		t.Fatal(`transports.` + fakeName + `.depht (for depth) was taken without complaint`)
	}
}

func TestBadValuesRefused(t *testing.T) {
	files := []string{
		"log_level: verbose\n",
		"log_format: xml\n",
		"limits:\n  max_envelope: big\n",
		"limits:\n  max_envelope: -1\n",
		"limits:\n  burst: -1\n",
		"limits:\n  peers_per_room: -3\n",
		"limits:\n  sessions_per_node: -3\n",
		"delivery:\n  resume_window: 45\n", // a duration needs a unit
		"delivery:\n  resume_window: soon\n",
		"delivery:\n  offline_hold: -1s\n",
		"delivery:\n  mailbox_messages: -1\n",
		"delivery:\n  mailbox_bytes: -1\n",
		"allowed_origins: https://a.example\n", // a list, not a string
		"transports:\n  nosuch: {}\n",
		"transports: [websocket]\n",
		"listen: [a]\n",
		"pprof: maybe\n",
		"limits: 5\n",
		"{{{\n",
	}
	for _, yaml := range files {
		if c, err := config.Load(writeConfig(t, yaml), nil); err == nil {
			t.Errorf("bad file taken:\n%s-> %+v", yaml, c)
		}
	}
	envs := [][]string{
		{"SWITCHBOARD_LIMITS_MAX_ENVELOPE=abc"},
		{"SWITCHBOARD_LIMITS_MAX_ENVELOPE=-5"},
		{"SWITCHBOARD_LIMITS_MAX_ENVELOPE=1.5"},
		{"SWITCHBOARD_LIMITS_RATE=fast"},
		{"SWITCHBOARD_DELIVERY_RESUME_WINDOW=45"},
		{"SWITCHBOARD_DELIVERY_RESUME_WINDOW=-45s"},
		{"SWITCHBOARD_LOG_ENVELOPES=perhaps"},
		{"SWITCHBOARD_LOG_LEVEL=loud"},
		{"SWITCHBOARD_TRANSPORTS=nosuch"},
		{"SWITCHBOARD_TRANSPORTS=websocket,nosuch"},
	}
	for _, env := range envs {
		if c, err := config.Load("", env); err == nil {
			t.Errorf("bad environment %v taken: %+v", env, c)
		} else if !strings.Contains(err.Error(), strings.SplitN(env[0], "=", 2)[0]) && !strings.Contains(env[0], "TRANSPORTS") &&
			!strings.Contains(env[0], "LOG_LEVEL") && !strings.Contains(err.Error(), "negative") {
			t.Errorf("error for %v does not name the variable: %v", env, err)
		}
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("a missing file was taken")
	}
}

func TestTransportConfig(t *testing.T) {
	path := writeConfig(t, `
allowed_origins: [https://top.example]
transports:
  `+fakeName+`:
    depth: 3
    timeout: 2s
  longpoll:
    allowed_origins: [https://own.example]
`)
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTransport(c, fakeName)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.(*fakeTransport).opts
	want := fakeOptions{AllowedOrigins: []string{"https://top.example"}, Depth: 3, Timeout: 2 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fake options %+v, want %+v", got, want)
	}
	// The top-level list is copied, not shared.
	got.AllowedOrigins[0] = "changed"
	if c.AllowedOrigins[0] != "https://top.example" {
		t.Fatal("a transport's AllowedOrigins aliases the top-level list")
	}
	// A transport's own list is its own.
	opts, err := c.TransportConfig("longpoll")
	if err != nil {
		t.Fatal(err)
	}
	if o := reflect.ValueOf(opts).Elem().FieldByName("AllowedOrigins").Interface().([]string); !slices.Equal(o, []string{"https://own.example"}) {
		t.Fatalf("longpoll's own origins: %v", o)
	}
	// A bad value in the section is an error that names the section.
	c2, err := config.Load(writeConfig(t, "transports:\n  "+fakeName+":\n    depth: deep\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTransport(c2, fakeName); err == nil || !strings.Contains(err.Error(), "transports."+fakeName) {
		t.Fatalf("bad value in the section: %v", err)
	}
	// An empty section is no section.
	c3, err := config.Load(writeConfig(t, "transports:\n  "+fakeName+":\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr, err := newTransport(c3, fakeName); err != nil || tr.(*fakeTransport).opts.Depth != 0 {
		t.Fatalf("empty section: %v", err)
	}
	// Without a top-level list, nothing is filled in.
	c4, _ := config.Load(writeConfig(t, "transports:\n  "+fakeName+": {depth: 1}\n"), nil)
	tr, err = newTransport(c4, fakeName)
	if err != nil || tr.(*fakeTransport).opts.AllowedOrigins != nil {
		t.Fatalf("no top-level origins: %+v, %v", tr, err)
	}
	// The cluster's Redis is passed to every transport, explicitly.
	c5, err := config.Load("", []string{"SWITCHBOARD_CLUSTER_REDIS_ADDRS=10.0.0.1:6379,10.0.0.2:6379", "SWITCHBOARD_CLUSTER_MASTER_NAME=m"})
	if err != nil {
		t.Fatal(err)
	}
	if r := c5.TransportOptions().Redis; r.URL != "" || !slices.Equal(r.Addrs, []string{"10.0.0.1:6379", "10.0.0.2:6379"}) || r.MasterName != "m" {
		t.Fatalf("redis defaults: %+v", r)
	}
	if r := c4.TransportOptions().Redis; !r.IsZero() {
		t.Fatalf("redis defaults without a cluster: %+v", r)
	}
}

// TestTransportEnv: every setting of every registered transport, this
// test's own included, has its SWITCHBOARD_TRANSPORTS_<NAME>_<KEY>
// variable, which overrides the file.
func TestTransportEnv(t *testing.T) {
	path := writeConfig(t, "transports:\n  "+fakeName+": {depth: 1, timeout: 1s}\n")
	env := []string{
		"SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_DEPTH=7",
		"SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_ALLOWED_ORIGINS=https://a.example,https://b.example",
	}
	c, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newTransport(c, fakeName)
	if err != nil {
		t.Fatal(err)
	}
	want := fakeOptions{AllowedOrigins: []string{"https://a.example", "https://b.example"}, Depth: 7, Timeout: time.Second}
	if got := tr.(*fakeTransport).opts; !reflect.DeepEqual(got, want) {
		t.Fatalf("options %+v, want %+v", got, want)
	}
	c, err = config.Load(path, []string{"SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_TIMEOUT=5"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTransport(c, fakeName); err == nil || !strings.Contains(err.Error(), "SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_TIMEOUT") ||
		!strings.Contains(err.Error(), "durations look like 90s, 10m, 1h") {
		t.Fatalf("a bad duration: %v", err)
	}

	// The Redis transport's server comes from its variable, not localhost.
	c, err = config.Load("", []string{"SWITCHBOARD_TRANSPORTS=redis", "SWITCHBOARD_TRANSPORTS_REDIS_URL=redis://10.1.2.3:6380/4",
		"SWITCHBOARD_TRANSPORTS_REDIS_PREFIX=p", "SWITCHBOARD_TRANSPORTS_REDIS_PASSWORD=pw"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err = newTransport(c, "redis")
	if err != nil {
		t.Fatal(err)
	}
	if o := tr.(*redis.Transport).Options(); o.URL != "redis://10.1.2.3:6380/4" || o.Prefix != "p" || o.Password != "pw" {
		t.Fatalf("redis options from the environment: %+v", o)
	}

	// Every field of every registered transport's options has a variable
	// that reaches it.
	for _, name := range broker.Transports() {
		vars := config.TransportEnvNames(name)
		if len(vars) == 0 {
			t.Errorf("transport %s has no variables", name)
		}
		for _, v := range vars {
			if !strings.HasPrefix(v, "SWITCHBOARD_TRANSPORTS_") {
				t.Errorf("%s: variable %s", name, v)
			}
			if !slices.Contains(config.EnvNames(), v) {
				t.Errorf("EnvNames lacks %s", v)
			}
			if _, err := config.Load("", []string{v + "=x"}); err != nil && strings.Contains(err.Error(), "unknown environment variable") {
				t.Errorf("%s is refused as unknown: %v", v, err)
			}
		}
	}
}

// TestUnknownEnvRefused: a SWITCHBOARD_ variable that is no setting is
// refused, naming the closest one, rather than ignored.
func TestUnknownEnvRefused(t *testing.T) {
	for bad, near := range map[string]string{
		"SWITCHBOARD_TRANSPORT_REDIS_URL":   "SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_DEPTH",
		"SWITCHBOARD_LIMIT_RATE":            "SWITCHBOARD_LIMITS_RATE",
		"SWITCHBOARD_TOKENSECRET":           "SWITCHBOARD_TOKEN_SECRET",
		"SWITCHBOARD_TRANSPORTS_NOSUCH_URL": "",
	} {
		_, err := config.Load("", []string{bad + "=x"})
		if err == nil || !strings.Contains(err.Error(), "unknown environment variable "+bad) {
			t.Errorf("%s: %v", bad, err)
			continue
		}
		if near != "" && bad != "SWITCHBOARD_TRANSPORT_REDIS_URL" && !strings.Contains(err.Error(), "did you mean "+near+"?") {
			t.Errorf("%s: %v, want a hint of %s", bad, err, near)
		}
	}
	if _, err := config.Load("", []string{"SWITCHBOARD_CONFIG=x.yaml", "SWITCHBOARD_BENCH_URL=http://x", "OTHER_THING=1"}); err != nil {
		t.Fatalf("variables read elsewhere were refused: %v", err)
	}
	// A variable of a transport that does not run is a warning.
	c, err := config.Load("", []string{"SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_DEPTH=3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "SWITCHBOARD_TRANSPORTS_CONFIGTEST_FAKE_DEPTH") {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

// TestTokenSecretLength: a secret under 32 bytes is refused, unless the
// test switch allows it.
func TestTokenSecretLength(t *testing.T) {
	if _, err := config.Load("", []string{"SWITCHBOARD_TOKEN_SECRET=a"}); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("a 1-byte secret: %v", err)
	}
	if _, err := config.Load(writeConfig(t, "token_secret: "+strings.Repeat("x", 31)+"\n"), nil); err == nil {
		t.Fatal("a 31-byte secret was taken")
	}
	if _, err := config.Load("", []string{"SWITCHBOARD_TOKEN_SECRET=" + strings.Repeat("x", 32)}); err != nil {
		t.Fatalf("a 32-byte secret: %v", err)
	}
	c, err := config.Read("", []string{"SWITCHBOARD_TOKEN_SECRET=a"})
	if err != nil {
		t.Fatal(err)
	}
	c.ShortSecretOK = true
	if err := c.Validate(); err != nil {
		t.Fatalf("a short secret, allowed: %v", err)
	}
	if c, err := config.Load("", nil); err != nil || c.TokenMaxTTL != 24*time.Hour {
		t.Fatalf("token_max_ttl default: %v %v", c.TokenMaxTTL, err)
	}
	if _, err := config.Load("", []string{"SWITCHBOARD_TOKEN_MAX_TTL=-1h"}); err == nil {
		t.Fatal("a negative token_max_ttl was taken")
	}
}

func TestSet(t *testing.T) {
	var s struct {
		D time.Duration
		S string
		B bool
		I int
		F float64
		L []string
		U uint16
		M map[string]int
	}
	v := reflect.ValueOf(&s).Elem()
	for i, in := range []string{"1m30s", "text", "true", "42", "0.5", "x,y"} {
		if err := config.Set(v.Field(i), in); err != nil {
			t.Fatalf("Set %s: %v", in, err)
		}
	}
	if s.D != 90*time.Second || s.S != "text" || !s.B || s.I != 42 || s.F != 0.5 || !slices.Equal(s.L, []string{"x", "y"}) {
		t.Fatalf("Set: %+v", s)
	}
	if err := config.Set(v.Field(6), "70000"); err == nil {
		t.Fatal("Set of 70000 into a uint16 did not fail")
	}
	if err := config.Set(v.Field(7), "{a: 1}"); err != nil || s.M["a"] != 1 {
		t.Fatalf("Set of a map as YAML: %v %v", s.M, err)
	}
}

// The origin settings reach an HTTP transport's origin policy.
func TestPublicOrigins(t *testing.T) {
	c, err := config.Load("", []string{
		"SWITCHBOARD_PUBLIC_ORIGINS=https://signal.example.com",
		"SWITCHBOARD_TRUST_PROXY=true",
		"SWITCHBOARD_LISTEN=10.0.0.5:8080",
		"SWITCHBOARD_ALLOWED_ORIGINS=https://app.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	shared := c.TransportOptions()
	if !slices.Equal(shared.PublicOrigins, []string{"https://signal.example.com"}) || shared.Listen != "10.0.0.5:8080" || !shared.TrustProxy {
		t.Fatalf("transport options: %+v", shared)
	}
	opts, err := c.TransportConfig(longpoll.Name)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := broker.NewTransport(longpoll.Name, opts, shared)
	if err != nil {
		t.Fatal(err)
	}
	want := origin.Policy{Allowed: []string{"https://app.example"}, Public: []string{"https://signal.example.com"}, Listen: "10.0.0.5:8080", TrustProxy: true}
	if got := tr.(*longpoll.Transport).Options().Origins; !reflect.DeepEqual(got, want) {
		t.Fatalf("longpoll origin policy: %+v, want %+v", got, want)
	}
	if _, err := config.Load("", []string{"SWITCHBOARD_PUBLIC_ORIGINS=signal.example.com"}); err == nil {
		t.Fatal("a public origin without a scheme was taken")
	}
}

// TestTransportErrorLines: an error inside transports: names the line of
// the config file it is on, comments and all, not a line of the section
// read again.
func TestTransportErrorLines(t *testing.T) {
	file := "# a demo node\nlisten: :8080\n\n# the transports\ntransports:\n  websocket: {}\n  " + fakeName +
		":\n    # how deep\n    depth: 3\n\n    timout: 5s\n"
	c, err := config.Load(writeConfig(t, file), nil)
	if err == nil {
		_, err = newTransport(c, fakeName)
	}
	if err == nil || !strings.Contains(err.Error(), "line 11") || !strings.Contains(err.Error(), "timout") {
		t.Fatalf("want an error on line 11 naming timout, got %v", err)
	}
	c, err = config.Load(writeConfig(t, "\n\ntransports:\n  "+fakeName+":\n    depth: deep\n"), nil)
	if err == nil {
		_, err = newTransport(c, fakeName)
	}
	if err == nil || !strings.Contains(err.Error(), "line 5") {
		t.Fatalf("want an error on line 5, got %v", err)
	}
}

// TestNegativeLimits: a rate of -1 turns its limit off; any other negative
// rate or limit is refused, naming the setting and the values it takes.
func TestNegativeLimits(t *testing.T) {
	for _, ok := range []string{"limits:\n  rate: -1\n  join_rate: -1\n", "limits:\n  rate: 0.5\n"} {
		if _, err := config.Load(writeConfig(t, ok), nil); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for file, want := range map[string]string{
		"limits:\n  rate: -5\n":            "limits.rate -5: want a number of envelopes per second above 0, 0 for the default, or -1 for no limit",
		"limits:\n  join_rate: -0.5\n":     "limits.join_rate -0.5",
		"limits:\n  burst: -2\n":           "limits.burst cannot be negative",
		"delivery:\n  offline_hold: -1s\n": "delivery.offline_hold cannot be negative",
	} {
		if _, err := config.Load(writeConfig(t, file), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want %q, got %v", file, want, err)
		}
	}
	if _, err := config.Load("", []string{"SWITCHBOARD_LIMITS_RATE=-5"}); err == nil || !strings.Contains(err.Error(), "-1 for no limit") {
		t.Errorf("SWITCHBOARD_LIMITS_RATE=-5: %v", err)
	}
}
