package server

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// TestTokenTTL: the token command refuses lifetimes that are not positive,
// warns above token_max_ttl, and says once what a duration looks like.
func TestTokenTTL(t *testing.T) {
	out, errOut, err := runCmd(t, "token", "-room", "r", "-token-secret", goodSecret, "-ttl", "5")
	if err == nil || out != "" || errOut != "" || strings.Count(err.Error(), "durations look like 90s, 10m, 1h") != 1 || strings.Contains(err.Error(), "parse error") {
		t.Fatalf("-ttl 5: %v, stdout %q, stderr:\n%s", err, out, errOut)
	}
	for _, ttl := range []string{"-1h", "0s"} {
		out, _, err = runCmd(t, "token", "-room", "r", "-token-secret", goodSecret, "-ttl", ttl)
		if err == nil || out != "" || !strings.Contains(err.Error(), "durations look like") {
			t.Fatalf("-ttl %s: %v, stdout %q", ttl, err, out)
		}
	}
	out, errOut, err = runCmd(t, "token", "-room", "r", "-token-secret", goodSecret, "-ttl", "87600h")
	if err != nil || out == "" || !strings.Contains(errOut, "longer than token_max_ttl") {
		t.Fatalf("-ttl 87600h: %v, stdout %q, stderr %q", err, out, errOut)
	}
	t.Setenv("SWITCHBOARD_TOKEN_MAX_TTL", "100000h")
	if _, errOut, err = runCmd(t, "token", "-room", "r", "-token-secret", goodSecret, "-ttl", "87600h"); err != nil || errOut != "" {
		t.Fatalf("-ttl under a raised maximum: %v, %q", err, errOut)
	}
}

// TestTokenSecretLength: a secret under 32 bytes is refused by token and
// serve, unless -insecure-short-secret.
func TestTokenSecretLength(t *testing.T) {
	if out, _, err := runCmd(t, "token", "-room", "r", "-token-secret", "a"); err == nil || out != "" || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("token with a 1-byte secret: %v %q", err, out)
	}
	if out, _, err := runCmd(t, "token", "-room", "r", "-token-secret", "a", "-insecure-short-secret"); err != nil || out == "" {
		t.Fatalf("token with a short secret, allowed: %v", err)
	}
	t.Setenv("SWITCHBOARD_TOKEN_SECRET", "a")
	if _, _, err := runCmd(t, "serve", "-listen", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("serve with a 1-byte secret: %v", err)
	}
}

// TestServeEnv: serve -h lists the variable of every setting of every
// registered transport, and serve refuses an unknown SWITCHBOARD_ variable,
// naming the one meant.
func TestServeEnv(t *testing.T) {
	errOut, _, _ := runCmd(t, "serve", "-h") // the help is on stdout
	for _, name := range broker.Transports() {
		vars := config.TransportEnvNames(name)
		if len(vars) == 0 {
			t.Errorf("transport %s has no variables", name)
		}
		for _, v := range vars {
			if !strings.Contains(errOut, "  "+v+"\n") {
				t.Errorf("serve -h does not list %s", v)
			}
		}
	}
	for _, want := range []string{"SWITCHBOARD_TRANSPORTS_REDIS_URL", "SWITCHBOARD_TRANSPORTS_WEBSOCKET_ALLOWED_ORIGINS", "SWITCHBOARD_TRANSPORTS_LONGPOLL_IDLE_TIMEOUT"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("serve -h does not list %s", want)
		}
	}
	// Each variable reaches its setting: the options it fills differ from
	// the zero ones.
	for _, name := range broker.Transports() {
		zero, err := broker.NewTransportConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range config.TransportEnvNames(name) {
			reached := false
			for _, value := range []string{"7", "true", "1s", "x.example:1"} {
				c, err := config.Load("", []string{"SWITCHBOARD_TRANSPORTS=" + name, v + "=" + value})
				if err != nil {
					continue
				}
				opts, err := c.TransportConfig(name)
				if err == nil && !reflect.DeepEqual(opts, zero) {
					reached = true
					break
				}
			}
			if !reached {
				t.Errorf("%s reaches no setting of transport %s", v, name)
			}
		}
	}

	t.Setenv("SWITCHBOARD_TRANSPORT_REDIS_URL", "redis://10.0.0.1:6379/0")
	_, _, err := runCmd(t, "serve", "-listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "SWITCHBOARD_TRANSPORT_REDIS_URL (did you mean SWITCHBOARD_TRANSPORTS_REDIS_URL?)") {
		t.Fatalf("an unknown variable: %v", err)
	}
}
