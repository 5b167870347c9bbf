package barerelay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// shutdownWait bounds how long Main waits for requests in flight to finish.
const shutdownWait = 5 * time.Second

// Main runs a relay as a process would: it parses args (flag -addr, default
// 127.0.0.1:9090), listens, prints the address it serves on to stdout and
// serves until ctx is done, then disconnects every client and returns nil.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("barerelay", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9090", "`host:port` to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("barerelay: unexpected argument %q", fs.Arg(0))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	relay := New()
	srv := &http.Server{Handler: relay, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "barerelay: serving ws://%s/?id=<peer>\n", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
		err = srv.Shutdown(sctx)
		cancel()
		<-served
	}
	relay.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
