package peercmd_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/switchboard-rtc/switchboard/clients/go/peercmd"
)

// A main function for the peer subcommand: it runs until interrupted.
func ExampleMain() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	args := []string{"-url", "http://127.0.0.1:8080", "-room", "demo", "-peer", "alice", "-call", "bob", "-send", "hello"}
	if err := peercmd.Main(ctx, args, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
