package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/server/internal/config"
	"github.com/switchboard-rtc/switchboard/server/internal/node"
)

// loadConfig reads the configuration for serve and token: file, then
// environment, then the flags set on the command line.
func loadConfig(fs *flag.FlagSet, path string, flags map[string]*string, shortSecretOK bool) (config.Config, error) {
	cfg, err := config.Read(path, os.Environ())
	if err != nil {
		return cfg, err
	}
	cfg.ShortSecretOK = shortSecretOK
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range flags {
		if !set[name] {
			continue
		}
		switch name {
		case "listen":
			cfg.Listen = *v
		case "log-level":
			cfg.LogLevel = *v
		case "token-secret":
			cfg.TokenSecret = *v
		case "transports":
			cfg.Enabled = config.SplitList(*v)
		case "allowed-origins":
			cfg.AllowedOrigins = config.SplitList(*v)
		}
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("SWITCHBOARD_CONFIG"), "YAML config file (env SWITCHBOARD_CONFIG); none: built-in defaults")
	flags := map[string]*string{
		"listen":          fs.String("listen", "", "listen address (default :8080)"),
		"log-level":       fs.String("log-level", "", "debug, info, warn or error"),
		"token-secret":    fs.String("token-secret", "", "HS256 secret for join tokens (prefer SWITCHBOARD_TOKEN_SECRET)"),
		"transports":      fs.String("transports", "", "comma-separated transports to run (available: "+strings.Join(broker.Transports(), ", ")+")"),
		"allowed-origins": fs.String("allowed-origins", "", "comma-separated browser origins allowed; * for any"),
	}
	pprof := fs.Bool("pprof", false, "serve /debug/pprof/")
	shortSecret := fs.Bool("insecure-short-secret", false, "accept a token secret under 32 bytes (tests only)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchboard serve [flags]\n\nEvery config setting can be set by environment variable (an unknown SWITCHBOARD_ variable is refused):\n  %s\n\nFlags:\n",
			strings.Join(config.EnvNames(), "\n  "))
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *path, flags, *shortSecret)
	if err != nil {
		return err
	}
	cfg.Pprof = cfg.Pprof || *pprof
	log := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	return node.Run(ctx, cfg, log, clientFiles())
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// errUsage is a command-line error that the flag package has already
// printed, with the usage: main prints nothing more.
var errUsage = errors.New("usage")

// parseFlags parses args into fs; an error is printed by fs, once.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errUsage
	}
	return err
}
