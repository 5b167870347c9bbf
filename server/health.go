package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/cli"
)

// healthTimeout bounds one health check, request and answer.
const healthTimeout = 5 * time.Second

// health asks a node's /readyz whether it can serve: exit 0 if it answers
// 200, 1 otherwise. The default URL is this host on the port of
// SWITCHBOARD_LISTEN (or 8080), so that a container's health check needs
// no flags.
func health(ctx context.Context, args []string, stdout io.Writer) error {
	fs := cli.NewFlagSet("health", "[-url http://127.0.0.1:8080]",
		"Check that a node is ready (GET /readyz answers 200): exit 0 if it is, 1 if not. For container health checks.", nil)
	base := fs.String("url", defaultHealthURL(os.Getenv("SWITCHBOARD_LISTEN")), "the node's base `URL`")
	timeout := fs.Duration("timeout", healthTimeout, "how long to wait for the answer")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	u := strings.TrimSuffix(*base, "/") + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("health: -url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return failed{fmt.Errorf("health: %w", err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return failed{fmt.Errorf("health: %s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))}
	}
	fmt.Fprintf(stdout, "ready: %s\n", u)
	return nil
}

// defaultHealthURL is http://127.0.0.1 on listen's port (default 8080).
func defaultHealthURL(listen string) string {
	port := "8080"
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "" && p != "0" {
		port = p
	}
	return "http://127.0.0.1:" + port
}
