package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/cli"
)

func token(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("token", "-room R [-peer P] [-ttl 1h]",
		"Print a join token (an HS256 JWT) for a broker that requires them; the secret comes from -token-secret, the config or SWITCHBOARD_TOKEN_SECRET.", nil)
	path := fs.String("config", os.Getenv("SWITCHBOARD_CONFIG"), "YAML config file holding token_secret")
	room := fs.String("room", "", "room the token admits, or * for any (required)")
	peer := fs.String("peer", "", "peer id the token admits; empty: any")
	ttl := durationFlag(time.Hour)
	fs.Var(&ttl, "ttl", "how long the token is valid, a `duration` such as 90s, 10m, 1h (warned about above token_max_ttl)")
	secret := fs.String("token-secret", "", "HS256 secret (default: from the config or SWITCHBOARD_TOKEN_SECRET)")
	shortSecret := fs.Bool("insecure-short-secret", false, "accept a secret under 32 bytes (tests only)")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("token: -ttl %s: a token must live a while; durations look like 90s, 10m, 1h", time.Duration(ttl))
	}
	if *room == "" || (*room != "*" && !broker.ValidID(*room)) {
		return errors.New("token: -room must be a room id or *")
	}
	if *peer != "" && !broker.ValidID(*peer) {
		return errors.New("token: -peer must be 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	cfg, err := loadConfig(fs, *path, map[string]*string{"token-secret": secret}, *shortSecret)
	if err != nil {
		return err
	}
	if time.Duration(ttl) > cfg.TokenMaxTTL && cfg.TokenMaxTTL > 0 {
		fmt.Fprintf(stderr, "switchboard: warning: -ttl %s is longer than token_max_ttl (%s): a leaked token admits its holder all that time\n",
			time.Duration(ttl), cfg.TokenMaxTTL)
	}
	if cfg.TokenSecret == "" {
		return errors.New("token: no secret: set SWITCHBOARD_TOKEN_SECRET, token_secret in the config, or -token-secret")
	}
	tok, err := broker.NewToken([]byte(cfg.TokenSecret), *room, *peer, time.Duration(ttl))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// durationFlag is a duration flag whose error says what a duration looks like.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("durations look like 90s, 10m, 1h")
	}
	*d = durationFlag(v)
	return nil
}
