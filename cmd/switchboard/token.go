package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("SWITCHBOARD_CONFIG"), "YAML config file holding token_secret")
	room := fs.String("room", "", "room the token admits, or * for any (required)")
	peer := fs.String("peer", "", "peer id the token admits; empty: any")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	secret := fs.String("token-secret", "", "HS256 secret (default: from the config or SWITCHBOARD_TOKEN_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *room == "" || (*room != "*" && !broker.ValidID(*room)) {
		return errors.New("token: -room must be a room id or *")
	}
	if *peer != "" && !broker.ValidID(*peer) {
		return errors.New("token: -peer must be 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	cfg, err := loadConfig(fs, *path, map[string]*string{"token-secret": secret})
	if err != nil {
		return err
	}
	if cfg.TokenSecret == "" {
		return errors.New("token: no secret: set SWITCHBOARD_TOKEN_SECRET, token_secret in the config, or -token-secret")
	}
	tok, err := broker.NewToken([]byte(cfg.TokenSecret), *room, *peer, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
