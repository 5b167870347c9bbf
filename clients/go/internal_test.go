package switchboard

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
)

// The broker's pongs confirm what was written before the pings, so that
// nothing waits to be sent again.
func TestBrokerConfirmsSends(t *testing.T) {
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	a, err := Dial(ctx, srv.URL, Options{Room: "confirm", Peer: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial(ctx, srv.URL, Options{Room: "confirm", Peer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 50 {
		if err := a.SendMessage(ctx, "bob", i); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		n, out := len(a.unconfirmed)+len(a.queue), a.pingOut
		a.mu.Unlock()
		if n == 0 && out == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d envelopes still unconfirmed, ping %d out", n, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func FuzzEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"offer","from":"a","seq":3,"payload":{"type":"offer","sdp":"v=0"}}`,
		`{"type":"candidate","payload":null}`,
		`{"type":"candidate","payload":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}}`,
		`{"type":"error","seq":2,"payload":{"code":"peer-unavailable","message":"m","ref":"x"}}`,
		`{"type":"pong","payload":{"switchboard_confirm":7}}`,
		`{"type":"welcome","seq":1,"payload":{"peer":"p","session":"s","peers":[{"peer":"q","meta":{"a":1}}],"resumed":false}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var env Envelope
		if json.Unmarshal(data, &env) != nil {
			return
		}
		_, _ = env.Description()
		_, _ = env.Candidate()
		_ = env.Err()
		_, _ = confirmNumber(env.Payload)
		var w Welcome
		_ = env.Decode(&w)
		if _, err := json.Marshal(env); err != nil && json.Valid(env.Payload) {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
	})
}
