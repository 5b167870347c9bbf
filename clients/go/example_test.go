package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
)

// startExampleBroker runs a broker in the process for the examples; a real
// program dials its broker's base URL, such as "http://127.0.0.1:8080".
func startExampleBroker() *testbroker.Server {
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	return srv
}

// Two peers join a room; one sends the other a message.
func ExampleDial() {
	srv := startExampleBroker()
	defer srv.Close()
	ctx := context.Background()

	alice, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{
		Room:      "demo",
		Peer:      "bob",
		Transport: "longpoll",
		Meta:      map[string]any{"name": "Bob"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	fmt.Println("bob sees", bob.Peers()[0].Peer)

	joined, _ := alice.Recv(ctx)
	fmt.Println("alice got", joined.Type, string(joined.Payload))

	if err := bob.SendMessage(ctx, "alice", map[string]string{"text": "hi"}); err != nil {
		log.Fatal(err)
	}
	msg, _ := alice.Recv(ctx)
	fmt.Println("alice got", msg.Type, "from", msg.From, string(msg.Payload))
	// Output:
	// bob sees alice
	// alice got peer-joined {"peer":"bob","meta":{"name":"Bob"}}
	// alice got message from bob {"text":"hi"}
}

// Offers, answers and candidates are shaped like the browser's
// RTCSessionDescriptionInit and RTCIceCandidateInit.
func ExampleClient_SendCandidate() {
	srv := startExampleBroker()
	defer srv.Close()
	ctx := context.Background()
	alice, _ := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "alice"})
	defer alice.Close()
	bob, _ := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "bob"})
	defer bob.Close()

	mid, index := "0", uint16(0)
	alice.SendOffer(ctx, "bob", switchboard.SessionDescription{SDP: "v=0\r\n"})
	alice.SendCandidate(ctx, "bob", &switchboard.ICECandidateInit{
		Candidate:     "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
		SDPMid:        &mid,
		SDPMLineIndex: &index,
	})
	alice.SendCandidate(ctx, "bob", nil) // end of candidates

	for range 3 {
		env, _ := bob.Recv(ctx)
		fmt.Println(env.Type, string(env.Payload))
	}
	// Output:
	// offer {"type":"offer","sdp":"v=0\r\n"}
	// candidate {"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}
	// candidate null
}

// A join that the broker refuses returns its *Error.
func ExampleError() {
	srv := startExampleBroker()
	defer srv.Close()
	ctx := context.Background()
	first, _ := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "alice"})
	defer first.Close()

	_, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "alice"})
	var pe *switchboard.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Code)
	}
	// Output:
	// peer-id-taken
}

// A program reads what the broker delivers until the client ends.
func ExampleClient_Messages() {
	srv := startExampleBroker()
	defer srv.Close()
	ctx := context.Background()
	c, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{
		Room: "demo",
		OnStateChange: func(s switchboard.State) {
			log.Println("signaling", s) // reconnecting, connected again, closed
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for env := range c.Messages() {
			switch env.Type {
			case switchboard.TypePeerJoined, switchboard.TypePeerLeft:
				fmt.Println("peers now:", c.Peers())
			case switchboard.TypeError:
				fmt.Println("refused:", env.Err())
			default:
				fmt.Println(env.Type, "from", env.From)
			}
		}
		fmt.Println("ended:", c.Err())
	}()
	c.Close()
	<-c.Done()
}
