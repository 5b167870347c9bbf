package server

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/cli"
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

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("serve", "[-config file.yaml] [flags]",
		"Run a broker node: the transports, the demo page at /, the browser client at /client/, /healthz, /readyz and /metrics.",
		func(w io.Writer) {
			fmt.Fprintf(w, "Every config setting can be set by environment variable (an unknown SWITCHBOARD_ variable is refused):\n  %s\n",
				strings.Join(config.EnvNames(), "\n  "))
		})
	path := fs.String("config", os.Getenv("SWITCHBOARD_CONFIG"), "YAML config `file` (env SWITCHBOARD_CONFIG); none: built-in defaults")
	flags := map[string]*string{
		"listen":          fs.String("listen", "", "listen `address` (default :8080)"),
		"log-level":       fs.String("log-level", "", "debug, info, warn or error"),
		"token-secret":    fs.String("token-secret", "", "HS256 secret for join tokens (prefer SWITCHBOARD_TOKEN_SECRET)"),
		"transports":      fs.String("transports", "", "comma-separated transports to run (available: "+strings.Join(broker.Transports(), ", ")+")"),
		"allowed-origins": fs.String("allowed-origins", "", "comma-separated browser origins allowed; * for any"),
	}
	pprof := fs.Bool("pprof", false, "serve /debug/pprof/")
	shortSecret := fs.Bool("insecure-short-secret", false, "accept a token secret under 32 bytes (tests only)")
	if err := cli.Parse(fs, args, stdout); err != nil {
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
	return node.Run(ctx, cfg, log, clientFiles(), func(addr net.Addr) {
		if cfg.LogFormat == "json" {
			log.Info("where to go", "demo", baseURL("http", addr)+"/", "transports", cfg.TransportNames(), "tokens", cfg.TokenSecret != "")
			return
		}
		fmt.Fprint(stderr, welcome(cfg, addr))
	})
}

// welcome is what serve prints once it listens, for a newcomer: where the
// demo page is, the endpoints, the transports, and how tokens go on.
func welcome(cfg config.Config, addr net.Addr) string {
	base := baseURL("http", addr)
	names := cfg.TransportNames()
	var b strings.Builder
	fmt.Fprintf(&b, "\nSwitchboard is serving on %s, transports: %s.\n", addr, strings.Join(names, ", "))
	fmt.Fprintf(&b, "  Demo page:  %s/  (open it in two tabs, join the same room, and call)\n", base)
	for _, n := range names {
		switch n {
		case "websocket":
			fmt.Fprintf(&b, "  WebSocket:  %s/v1/ws\n", baseURL("ws", addr))
		case "longpoll":
			fmt.Fprintf(&b, "  Long-poll:  %s/v1/sessions\n", base)
		}
	}
	fmt.Fprintf(&b, "  Health:     %s/readyz  (switchboard health checks it)\n", base)
	if cfg.TokenSecret == "" {
		b.WriteString("  Tokens:     off, anyone may join any room. To require them, set SWITCHBOARD_TOKEN_SECRET=$(openssl rand -base64 32)\n" +
			"              and mint one per peer with: switchboard token -room R -peer P\n")
	} else {
		b.WriteString("  Tokens:     required; mint one with: switchboard token -room R -peer P\n")
	}
	b.WriteString("\n")
	return b.String()
}

// baseURL is scheme://host:port for addr, with localhost for a wildcard
// address.
func baseURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
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
