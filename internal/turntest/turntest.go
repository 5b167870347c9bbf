// Package turntest runs a real TURN server, coturn's turnserver, on a
// loopback port for one test. It checks credentials of the TURN REST API
// scheme (use-auth-secret) with a secret of the test's, relays between
// loopback peers, and listens on nothing but its one UDP and TCP port: no
// TLS, DTLS, CLI or admin listeners.
package turntest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// startTimeout is how long turnserver may take to accept connections.
const startTimeout = 15 * time.Second

// Server is a turnserver process that lives for one test.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1, for UDP and TCP.
	Addr string
	// Secret is the shared secret (static-auth-secret) it checks
	// credentials with.
	Secret []byte

	dir string
	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts turnserver on a free loopback port and stops it when t ends.
// When turnserver is not installed, Start fails t under CI=true and skips it
// otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("turnserver"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("turnserver is not installed (apt-get install coturn): %v", err)
		}
		t.Skipf("turnserver is not installed: %v", err)
	}
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	s := &Server{Secret: []byte(hex.EncodeToString(secret)), dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		if err = s.start(port); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting turnserver: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("turnserver log:\n%s", s.Log())
		}
	})
	return s
}

func (s *Server) start(port int) error {
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command("turnserver",
		"-n", // no configuration file: only what is here
		"--listening-ip=127.0.0.1",
		"--relay-ip=127.0.0.1",
		"--listening-port="+strconv.Itoa(port),
		"--use-auth-secret",
		"--static-auth-secret="+string(s.Secret),
		"--realm=switchboard.test",
		"--allow-loopback-peers",
		"--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
		"--fingerprint",
		"--userdb="+s.dir+"/turndb",
		"--pidfile="+s.dir+"/turnserver.pid",
		"--log-file="+s.logPath(), "--simple-log", "--no-stdout-log",
		"--verbose",
	)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("turnserver exited at start: %v", err)
		default:
		}
		// TCP answers once the listeners are up; UDP shares the port.
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("turnserver did not listen on %s within %v", s.Addr, startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL returns the server's turn: URL for transport "udp" or "tcp".
func (s *Server) URL(transport string) string {
	return "turn:" + s.Addr + "?transport=" + transport
}

// ICE returns broker options that hand out this server, over UDP, with
// credentials valid for ttl (0: the broker's default).
func (s *Server) ICE(ttl time.Duration) broker.ICE {
	return broker.ICE{TURNURLs: []string{s.URL("udp")}, TURNSecret: s.Secret, TURNTTL: ttl}
}

func (s *Server) logPath() string { return s.dir + "/turnserver.log" }

// Log returns what turnserver has logged so far.
func (s *Server) Log() string {
	data, _ := os.ReadFile(s.logPath())
	return string(data)
}

// Allocations returns the usernames of the relay allocations that
// turnserver granted so far, in order, as its log shows them.
func (s *Server) Allocations() []string {
	var users []string
	for _, line := range strings.Split(s.Log(), "\n") {
		// "session 001000000000000001: realm <switchboard.test> user <1700000000:alice>: incoming packet ALLOCATE processed, success"
		if !strings.Contains(line, "ALLOCATE processed, success") {
			continue
		}
		if _, rest, ok := strings.Cut(line, "user <"); ok {
			if user, _, ok := strings.Cut(rest, ">"); ok {
				users = append(users, user)
			}
		}
	}
	return users
}

// WaitAllocation waits until turnserver has granted an allocation to a
// username that ends with ":"+peer, and reports whether it did within
// timeout.
func (s *Server) WaitAllocation(ctx context.Context, peer string) bool {
	for {
		for _, u := range s.Allocations() {
			if strings.HasSuffix(u, ":"+peer) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends turnserver. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		s.cmd = nil
	}
}

// freePort returns a port that is free on 127.0.0.1 for both TCP and UDP.
func freePort() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("turntest: no port free for both TCP and UDP")
}
