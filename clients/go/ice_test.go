package switchboard_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/switchboard-rtc/switchboard/broker"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/internal/turntest"
)

func TestICEServersFromBroker(t *testing.T) {
	stun := broker.ICEServer{URLs: []string{"stun:127.0.0.1:3478"}}
	srv := startBroker(t, testbroker.Options{Broker: broker.Options{ICE: broker.ICE{
		Servers: []broker.ICEServer{stun}, TURNURLs: []string{"turn:127.0.0.1:3478"}, TURNSecret: []byte("x"), TURNTTL: 4 * time.Second,
	}}})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			c := dial(t, srv.URL, switchboard.Options{Room: "ice", Peer: "p-" + tr, Transport: tr})
			ice := c.ICEServers()
			if len(ice) != 2 || ice[0].URLs[0] != stun.URLs[0] || !strings.HasSuffix(ice[1].Username, ":p-"+tr) || ice[1].Credential == "" {
				t.Fatalf("ICEServers() = %+v", ice)
			}
			first := c.ICEExpires()
			if left := time.Until(first); left <= 0 || left > 4*time.Second {
				t.Fatalf("ICEExpires() in %v", left)
			}
			// The client refreshes by itself before they expire.
			deadline := time.Now().Add(20 * time.Second)
			for !c.ICEExpires().After(first) {
				if time.Now().After(deadline) {
					t.Fatal("the client did not refresh its ICE credentials before they expired")
				}
				time.Sleep(50 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			fresh, err := c.RefreshICEServers(ctx)
			if err != nil || len(fresh) != 2 || fresh[1].Username == "" {
				t.Fatalf("RefreshICEServers = %+v, %v", fresh, err)
			}
		})
	}
}

func TestICEServersNone(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	c := dial(t, srv.URL, switchboard.Options{Room: "ice"})
	if ice := c.ICEServers(); len(ice) != 0 || !c.ICEExpires().IsZero() {
		t.Fatalf("ICEServers() = %+v, expiring %v", ice, c.ICEExpires())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ice, err := c.RefreshICEServers(ctx); err != nil || len(ice) != 0 {
		t.Fatalf("RefreshICEServers = %+v, %v", ice, err)
	}
}

// allocate asks the TURN server at addr for a relay with the credentials
// of servers' TURN entry.
func allocate(t *testing.T, addr string, server switchboard.ICEServer) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: server.Username, Password: server.Credential, LoggerFactory: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	relay, err := c.AllocateWithContext(ctx)
	if err != nil {
		return err
	}
	return relay.Close()
}

// TestICECredentialsExpire: a real coturn takes the broker's credentials
// while they are valid and refuses them once they expire; the refreshed
// ones work.
func TestICECredentialsExpire(t *testing.T) {
	ts := turntest.Start(t)
	// Credentials valid for 4 s: long enough to be used on a loaded
	// machine, short enough to wait out.
	srv := startBroker(t, testbroker.Options{Broker: broker.Options{ICE: ts.ICE(4 * time.Second)}})
	c := dial(t, srv.URL, switchboard.Options{Room: "ice", Peer: "alice"})
	old := c.ICEServers()
	if len(old) != 1 || old[0].URLs[0] != ts.URL("udp") {
		t.Fatalf("ICEServers() = %+v", old)
	}
	if err := allocate(t, ts.Addr, old[0]); err != nil {
		t.Fatalf("coturn refused fresh credentials: %v", err)
	}
	// Wait out the credentials' lifetime (coturn compares the username's
	// expiry with its clock, in whole seconds).
	time.Sleep(time.Until(c.ICEExpires()) + 1500*time.Millisecond)
	if err := allocate(t, ts.Addr, old[0]); err == nil {
		t.Fatal("coturn took expired credentials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh, err := c.RefreshICEServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fresh[0].Username == old[0].Username {
		t.Fatalf("refreshed credentials are the old ones: %q", fresh[0].Username)
	}
	if err := allocate(t, ts.Addr, fresh[0]); err != nil {
		t.Fatalf("coturn refused refreshed credentials: %v", err)
	}
	if users := ts.Allocations(); len(users) != 2 || users[1] != fresh[0].Username {
		t.Fatalf("coturn's allocations: %q", users)
	}
}
