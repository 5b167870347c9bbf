package webrtcpeer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
)

// countingSignaler counts the signals that go through the broker.
type countingSignaler struct {
	webrtcpeer.Signaler
	mu    sync.Mutex
	count map[string]int
}

func (s *countingSignaler) Send(ctx context.Context, env switchboard.Envelope) error {
	s.mu.Lock()
	s.count[env.Type]++
	s.mu.Unlock()
	return s.Signaler.Send(ctx, env)
}

func (s *countingSignaler) sent() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.count {
		out[k] = v
	}
	return out
}

// With HandOver on the calling end, the call's later negotiation (a new
// transceiver from either end) goes over the hand-over channel, not the
// broker.
func TestHandOver(t *testing.T) {
	srv := startBroker(t)
	alice := newEnd(t, srv.URL, "handover", "alice", "websocket", webrtcpeer.Options{HandOver: true, GatherAll: true})
	bob := newEnd(t, srv.URL, "handover", "bob", "longpoll", webrtcpeer.Options{})
	sigs := map[string]*countingSignaler{}
	for name, e := range map[string]*end{"alice": alice, "bob": bob} {
		e.wrap = func(sig webrtcpeer.Signaler) webrtcpeer.Signaler {
			c := &countingSignaler{Signaler: sig, count: map[string]int{}}
			sigs[name] = c
			return c
		}
	}
	echoCall(t, alice, bob)
	pa, pb := alice.waitPeer(), bob.waitPeer()
	deadline := time.Now().Add(20 * time.Second)
	for !pa.HandedOver() || !pb.HandedOver() {
		if time.Now().After(deadline) {
			t.Fatalf("not handed over:\nalice: %s\nbob: %s", alice.eventKinds(), bob.eventKinds())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := map[string]map[string]int{"alice": sigs["alice"].sent(), "bob": sigs["bob"].sent()}
	if before["alice"][switchboard.TypeCandidate] != 0 {
		t.Fatalf("alice trickled through the broker before the hand-over: %v", before["alice"])
	}
	// New transceivers from either end: each is an offer and an answer,
	// over the channel.
	for i, p := range []*webrtcpeer.Peer{pb, pa} {
		answers := func() int {
			return alice.count(webrtcpeer.EventAnswerReceived) + bob.count(webrtcpeer.EventAnswerReceived)
		}
		n := answers()
		if _, err := p.PeerConnection().AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for answers() == n {
			if time.Now().After(deadline) {
				t.Fatalf("renegotiation %d did not complete:\nalice: %s\nbob: %s", i, alice.eventKinds(), bob.eventKinds())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := pa.SendText("after renegotiation"); err != nil {
			t.Fatal(err)
		}
		alice.waitMessage("echo: after renegotiation")
	}
	for name, c := range sigs {
		after := c.sent()
		for _, typ := range []string{switchboard.TypeOffer, switchboard.TypeAnswer, switchboard.TypeCandidate} {
			if after[typ] != before[name][typ] {
				t.Errorf("%s sent %d %s through the broker after the hand-over (%d before)", name, after[typ]-before[name][typ], typ, before[name][typ])
			}
		}
	}
}
