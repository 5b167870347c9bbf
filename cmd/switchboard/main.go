// Command switchboard is the Switchboard WebRTC signaling broker.
//
//	switchboard serve [flags]     run a broker node
//	switchboard token [flags]     print a join token
//	switchboard peer [flags]      a headless WebRTC peer: call or answer, echo
//	switchboard bench [flags]     load-test a running broker
//	switchboard version           print the version
//
// Run a subcommand with -h for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return flag.ErrHelp
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "token":
		return token(rest, stdout, stderr)
	case "bench":
		return bench(ctx, rest, stdout)
	case "peer":
		return peer(ctx, rest, stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	default:
		usage(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Switchboard: a WebRTC signaling broker.

Usage:
  switchboard serve [-config file.yaml] [flags]   run a broker node (defaults: :8080, websocket + longpoll)
  switchboard token -room R [-peer P] [-ttl 1h]   print a join token (needs the token secret)
  switchboard peer -room R [-call P] [-echo]      a headless WebRTC peer (pion): call or answer, one line per event
  switchboard bench [flags]                       load-test a running broker, print JSON figures
  switchboard version                             print the version

Run 'switchboard <command> -h' for a command's flags.
`)
}
