// Package server is the switchboard command: what the stock binary runs,
// for a custom binary to run too, with its own transports beside the
// built-in ones.
//
// A transport registers itself with broker.Register from its package's
// init, the way database/sql drivers do, so a custom binary is an import
// and one call:
//
//	package main
//
//	import (
//		"github.com/switchboard-rtc/switchboard/server"
//
//		_ "example.com/mytransport" // registers "mytransport"
//	)
//
//	func main() { server.Main() }
//
// It has every subcommand, setting, environment variable, flag and endpoint
// of the stock binary (health, readiness, metrics, graceful shutdown, the
// browser client and the demo page), and its transports section and
// SWITCHBOARD_TRANSPORTS_<NAME>_<KEY> variables configure the custom
// transport as they do the built-in ones. The built-in transports
// (websocket, longpoll, redis, email) are always registered.
//
// The subcommands:
//
//	switchboard serve [flags]     run a broker node
//	switchboard token [flags]     print a join token
//	switchboard peer [flags]      a headless WebRTC peer: call or answer, echo
//	switchboard bench [flags]     load-test a running broker
//	switchboard health [flags]    check a node's /readyz (for container health checks)
//	switchboard version           print the version
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-rtc/switchboard/internal/cli"

	// The built-in transports register themselves.
	_ "github.com/switchboard-rtc/switchboard/transports/email"
	_ "github.com/switchboard-rtc/switchboard/transports/longpoll"
	_ "github.com/switchboard-rtc/switchboard/transports/redis"
	_ "github.com/switchboard-rtc/switchboard/transports/websocket"
)

// Version is the version that `switchboard version` prints; set it at build
// time with -ldflags "-X github.com/switchboard-rtc/switchboard/server.Version=…".
var Version = "dev"

// Main runs the command line in os.Args until it is done or the process is
// interrupted (SIGINT or SIGTERM: serve then shuts down gracefully), and
// exits with its status. It is the whole of a switchboard binary's main.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs the command line args (without the program's name) until it is
// done or ctx ends, and returns the exit status: 0 on success and after -h,
// 1 when a health check or a bench run failed, 2 on any other error, which
// it has printed to stderr on one line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "switchboard:", err)
	if errors.Is(err, errFailed) {
		return 1
	}
	return 2
}

// errUsage is a missing command, whose usage run has printed.
var errUsage = errors.New("usage")

// errFailed marks a command that ran and failed (an unready node, a bench
// run with errors), as against one used wrongly: exit status 1. Wrap an
// error in failed to mark it.
var errFailed = errors.New("failed")

// failed is err, marked as errFailed.
type failed struct{ err error }

func (f failed) Error() string        { return f.err.Error() }
func (f failed) Unwrap() error        { return f.err }
func (f failed) Is(target error) bool { return target == errFailed }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "token":
		return token(rest, stdout, stderr)
	case "bench":
		return bench(ctx, rest, stdout)
	case "peer":
		return peer(ctx, rest, stdout)
	case "health":
		return health(ctx, rest, stdout)
	case "version", "--version", "-version":
		fs := cli.NewFlagSet("version", "", "Print the version, the Go version and the protocol version.", nil)
		if err := cli.Parse(fs, rest, stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	default:
		return fmt.Errorf("unknown command %q (commands: serve, token, peer, bench, health, version; run 'switchboard -h')", cmd)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Switchboard: a WebRTC signaling broker.

Usage:
  switchboard serve [-config file.yaml] [flags]   run a broker node (defaults: :8080, websocket + longpoll)
  switchboard token -room R [-peer P] [-ttl 1h]   print a join token (needs the token secret)
  switchboard peer -room R [-call P] [-echo]      a headless WebRTC peer (pion): call or answer, one line per event
  switchboard bench [flags]                       load-test a running broker, print JSON figures
  switchboard health [-url http://host:8080]      exit 0 if the node's /readyz says ready (for health checks)
  switchboard version                             print the version

Run 'switchboard <command> -h' for a command's flags.
`)
}
