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
	"github.com/switchboard-rtc/switchboard/cmd/switchboard/internal/config"
	_ "github.com/switchboard-rtc/switchboard/transports/longpoll"
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
	broker.Register(fakeName, func(decode func(any) error) (broker.Transport, error) {
		var o fakeOptions
		if err := decode(&o); err != nil {
			return nil, err
		}
		return &fakeTransport{o}, nil
	})
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
token_secret: s3cret
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
		c.TokenSecret != "s3cret" || !slices.Equal(c.AllowedOrigins, []string{"https://a.example", "https://b.example"}) ||
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
	want := broker.Options{NodeID: "n7", TokenSecret: []byte("s3cret"), MaxEnvelope: 1000, Rate: -1, Burst: 5,
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
		"SWITCHBOARD_TOKEN_SECRET=x=y=z", // a value may hold '='
		"UNRELATED=1",
	}
	c, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7000" || c.Limits.MaxEnvelope != 2048 || c.Delivery.ResumeWindow != 45*time.Second ||
		!slices.Equal(c.AllowedOrigins, []string{"a", "b"}) || c.Limits.Rate != 2.5 || !c.LogEnvelopes || c.TokenSecret != "x=y=z" {
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
	if _, err := broker.NewTransport(fakeName, c.TransportDecoder(fakeName)); err == nil {
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

func TestTransportDecoder(t *testing.T) {
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
	tr, err := broker.NewTransport(fakeName, c.TransportDecoder(fakeName))
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

	// A transport's own list wins over the top level.
	var own struct {
		AllowedOrigins []string `yaml:"allowed_origins"`
	}
	if err := c.TransportDecoder("longpoll")(&own); err != nil || !slices.Equal(own.AllowedOrigins, []string{"https://own.example"}) {
		t.Fatalf("longpoll's own origins: %v, %v", own.AllowedOrigins, err)
	}
	// A transport with no section gets the defaults and the top-level origins.
	var none fakeOptions
	if err := c.TransportDecoder("websocket")(&none); err != nil || !reflect.DeepEqual(none, fakeOptions{AllowedOrigins: []string{"https://top.example"}}) {
		t.Fatalf("no section: %+v, %v", none, err)
	}
	// Options without AllowedOrigins, or not a struct, are left alone.
	var plain struct{ Depth int }
	if err := c.TransportDecoder("nosection")(&plain); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := c.TransportDecoder(fakeName)(&m); err != nil || m["depth"] != 3 {
		t.Fatalf("into a map: %v, %v", m, err)
	}
	// A bad value in the section is an error that names the section.
	c2, err := config.Load(writeConfig(t, "transports:\n  "+fakeName+":\n    depth: deep\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.NewTransport(fakeName, c2.TransportDecoder(fakeName)); err == nil || !strings.Contains(err.Error(), "transports."+fakeName) {
		t.Fatalf("bad value in the section: %v", err)
	}
	// An empty section is no section.
	c3, err := config.Load(writeConfig(t, "transports:\n  "+fakeName+":\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr, err := broker.NewTransport(fakeName, c3.TransportDecoder(fakeName)); err != nil || tr.(*fakeTransport).opts.Depth != 0 {
		t.Fatalf("empty section: %v", err)
	}
	// Without a top-level list, nothing is filled in.
	c4, _ := config.Load(writeConfig(t, "transports:\n  "+fakeName+": {depth: 1}\n"), nil)
	tr, err = broker.NewTransport(fakeName, c4.TransportDecoder(fakeName))
	if err != nil || tr.(*fakeTransport).opts.AllowedOrigins != nil {
		t.Fatalf("no top-level origins: %+v, %v", tr, err)
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
		U uint
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
	if err := config.Set(v.Field(6), "1"); err == nil {
		t.Fatal("Set of a uint, which no setting is, did not fail")
	}
}
