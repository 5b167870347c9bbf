package email

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// TestICEServersByEmail: a peer on email gets its STUN/TURN servers, with
// TURN credentials minted for its peer id, in the welcome mail, and fresh
// ones when it asks by mail.
func TestICEServersByEmail(t *testing.T) {
	ice := broker.ICE{
		Servers:    []broker.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}},
		TURNURLs:   []string{"turn:127.0.0.1:3478?transport=udp"},
		TURNSecret: []byte("email-turn-secret"),
		TURNTTL:    time.Hour,
	}
	r := newRig(t, Options{}, broker.Options{ICE: ice})
	in := &inbox{r: r, addr: alice}
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, "", `{"type":"join","room":"demo","payload":{"peer":"alice"}}`)); err != nil {
		t.Fatal(err)
	}
	welcome := in.nextOfType(t, "welcome")
	p := welcome["payload"].(map[string]any)
	session := p["session"].(string)
	checkICE := func(what string, p map[string]any) string {
		t.Helper()
		servers, _ := p["ice_servers"].([]any)
		if len(servers) != 2 || p["ice_ttl"] != float64(3600) {
			t.Fatalf("%s: ice_servers %v, ice_ttl %v", what, p["ice_servers"], p["ice_ttl"])
		}
		turn := servers[1].(map[string]any)
		user, _ := turn["username"].(string)
		if !strings.HasSuffix(user, ":alice") || turn["credential"] == "" {
			t.Fatalf("%s: TURN entry %v", what, turn)
		}
		return user
	}
	checkICE("the welcome", p)
	if err := submit(t, r.smtp, alice, peerMail(alice, DefaultAddress, session, `{"type":"ice-servers"}`)); err != nil {
		t.Fatal(err)
	}
	answer := in.nextOfType(t, "ice-servers")
	if _, ok := answer["seq"]; ok {
		t.Fatalf("the ice-servers answer has a seq: %v", answer)
	}
	checkICE("the answer", answer["payload"].(map[string]any))
	for _, m := range in.mail {
		if data, _ := json.Marshal(m.envs); strings.Contains(string(data), "email-turn-secret") {
			t.Fatal("a mail shows the TURN secret")
		}
	}
}
