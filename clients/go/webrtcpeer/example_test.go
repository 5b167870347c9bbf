package webrtcpeer_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pion/webrtc/v4"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
	"github.com/switchboard-rtc/switchboard/clients/go/webrtcpeer"
)

// serveSignals hands the signals that c receives to the Peer that get
// returns for their sender; get makes one on an incoming offer.
func serveSignals(c *switchboard.Client, get func(from string, offer bool) *webrtcpeer.Peer) {
	for env := range c.Messages() {
		if !webrtcpeer.IsSignal(env) {
			continue
		}
		if p := get(env.From, env.Type == switchboard.TypeOffer); p != nil {
			p.HandleSignal(env)
		}
	}
}

// Alice calls bob, who echoes what arrives on the data channel. Each end
// reads its signaling client and hands the signals to its Peer.
func ExampleNew() {
	// A broker in the process; a real program dials its broker's URL.
	srv, err := testbroker.Start(testbroker.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	api := loopbackAPI() // host candidates on the loopback interface only

	// Bob answers and echoes.
	bobSig, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer bobSig.Close()
	bobPeer := make(chan *webrtcpeer.Peer, 1)
	go serveSignals(bobSig, func(from string, offer bool) *webrtcpeer.Peer {
		select {
		case p := <-bobPeer:
			bobPeer <- p
			return p
		default:
		}
		if !offer {
			return nil
		}
		var p *webrtcpeer.Peer
		ready := make(chan struct{})
		p, _ = webrtcpeer.New(bobSig, from, webrtcpeer.Options{
			API: api,
			OnEvent: func(ev webrtcpeer.Event) {
				if ev.Kind == webrtcpeer.EventMessage {
					<-ready
					p.SendText("echo: " + string(ev.Data))
				}
			},
		})
		close(ready)
		bobPeer <- p
		return p
	})

	// Alice calls.
	aliceSig, err := switchboard.Dial(ctx, srv.URL, switchboard.Options{Room: "demo", Peer: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer aliceSig.Close()
	got := make(chan string, 1)
	alice, err := webrtcpeer.New(aliceSig, "bob", webrtcpeer.Options{
		API:           api,
		Configuration: webrtc.Configuration{
			// ICEServers: []webrtc.ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}},
		},
		OnEvent: func(ev webrtcpeer.Event) {
			if ev.Kind == webrtcpeer.EventMessage {
				got <- string(ev.Data)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	go serveSignals(aliceSig, func(string, bool) *webrtcpeer.Peer { return alice })
	if err := alice.Call(); err != nil {
		log.Fatal(err)
	}

	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := alice.WaitOpen(wait); err != nil {
		log.Fatal(err)
	}
	fmt.Println("data channel open; alice is polite:", alice.Polite())
	alice.SendText("hello")
	fmt.Println(<-got)
	alice.Hangup(ctx)
	// Output:
	// data channel open; alice is polite: true
	// echo: hello
}
