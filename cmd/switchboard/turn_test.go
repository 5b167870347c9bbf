package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/turntest"
	"github.com/switchboard-rtc/switchboard/transports/redis/redistest"
)

// TestRelayOnlyCallThroughCoturn: a real coturn checks the credentials that
// a switchboard serve process hands out (configured through the
// environment, as in production); two switchboard peer processes, one on
// WebSocket and one on the Redis transport, each allowed relayed candidates
// only, open a data channel through it.
func TestRelayOnlyCallThroughCoturn(t *testing.T) {
	ts := turntest.Start(t)
	rs := redistest.Start(t)
	const tokenSecret = "relay-test-secret-of-at-least-32-bytes"
	node, base := serveNode(t, rs.URL(), "turn", "SWITCHBOARD_TRANSPORTS=websocket,longpoll,redis",
		"SWITCHBOARD_TOKEN_SECRET="+tokenSecret,
		"SWITCHBOARD_ICE_SERVERS=stun:"+ts.Addr,
		"SWITCHBOARD_ICE_TURN_URLS="+ts.URL("udp")+","+ts.URL("tcp"),
		"SWITCHBOARD_ICE_TURN_SECRET="+string(ts.Secret),
		"SWITCHBOARD_ICE_TURN_TTL=10m",
		"SWITCHBOARD_LOG_LEVEL=debug")

	// Before joining: a token-less request is refused, a token gets servers.
	resp, err := http.Get(base + "/v1/ice-servers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/ice-servers without a token: %d", resp.StatusCode)
	}
	token := func(peer string) string {
		tok, err := broker.NewToken([]byte(tokenSecret), "relay", peer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/ice-servers", nil)
	req.Header.Set("Authorization", "Bearer "+token("carol"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ICEServers []broker.ICEServer `json:"ice_servers"`
		ICETTL     int64              `json:"ice_ttl"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(got.ICEServers) != 2 || got.ICETTL != 600 ||
		!strings.HasSuffix(got.ICEServers[1].Username, ":carol") || len(got.ICEServers[1].URLs) != 2 {
		t.Fatalf("GET /v1/ice-servers with a token: %d %+v", resp.StatusCode, got)
	}

	bob := spawn(t, nil, "peer", "-transport", "redis", "-url", rs.URL(), "-room", "relay", "-peer", "bob",
		"-token", token("bob"), "-loopback", "-relay", "-echo", "-exit-after-message")
	waitOutput(t, bob, "joined room=relay peer=bob transport=redis", 20*time.Second)
	waitOutput(t, bob, `ice-servers urls="stun:`+ts.Addr+","+ts.URL("udp")+","+ts.URL("tcp")+`"`, 5*time.Second)
	alice := spawn(t, nil, "peer", "-url", base, "-room", "relay", "-peer", "alice", "-token", token("alice"),
		"-loopback", "-relay", "-call", "bob", "-send", "through the relay", "-exit-after-message")
	waitOutput(t, alice, `message-received peer=bob text="through the relay"`, 60*time.Second)
	waitOutput(t, bob, `message-received peer=alice text="through the relay"`, 5*time.Second)

	t.Logf("alice printed:\n%s\nbob printed:\n%s", alice.out, bob.out)
	// The selected pair of each end is relayed, through coturn's address.
	for _, p := range []struct {
		proc   *proc
		remote string
	}{{alice, "bob"}, {bob, "alice"}} {
		if want := "candidate-pair peer=" + p.remote + " local=relay/127.0.0.1:"; !strings.Contains(p.proc.out.String(), want) {
			t.Errorf("no %q in:\n%s", want, p.proc.out)
		}
		if strings.Contains(p.proc.out.String(), "typ host") {
			t.Errorf("a host candidate was used under the relay policy:\n%s", p.proc.out)
		}
	}
	// coturn granted each peer a relay, with the credentials minted for it.
	users := ts.Allocations()
	for _, peer := range []string{"alice", "bob"} {
		found := false
		for _, u := range users {
			found = found || strings.HasSuffix(u, ":"+peer)
		}
		if !found {
			t.Errorf("coturn allocated no relay for %s; it allocated for %q", peer, users)
		}
	}
	if strings.Contains(alice.out.String()+bob.out.String()+node.out.String(), string(ts.Secret)) {
		t.Error("the TURN secret was printed or logged")
	}
	if !strings.Contains(node.out.String(), "handing out ICE servers") {
		t.Errorf("the node did not log its ICE servers:\n%s", node.out)
	}
}
