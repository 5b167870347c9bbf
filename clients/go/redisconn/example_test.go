package redisconn_test

import (
	"context"
	"log"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/redisconn"
)

// A back-end service that reaches only the broker's Redis joins a room and
// answers every message sent to it. A program that does not otherwise use
// the package imports it blank:
//
//	import _ "github.com/switchboard-rtc/switchboard/clients/go/redisconn"
func Example() {
	ctx := context.Background()
	client, err := switchboard.Dial(ctx, "redis://127.0.0.1:6379/0", switchboard.Options{
		Room:      "demo",
		Peer:      "echo-service",
		Transport: redisconn.Name, // "redis"
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	for env := range client.Messages() {
		if env.Type == switchboard.TypeMessage && env.From != "" {
			if err := client.Send(ctx, switchboard.Envelope{Type: switchboard.TypeMessage, To: env.From, Payload: env.Payload}); err != nil {
				log.Print(err)
			}
		}
	}
	log.Print("signaling ended: ", client.Err())
}

// A broker whose Redis transport has a prefix of its own (its prefix option)
// is reached through a transport registered with that prefix.
func ExampleNewDialFunc() {
	switchboard.RegisterTransport("redis-tenant-a", redisconn.NewDialFunc(redisconn.Config{Prefix: "tenant-a"}))

	client, err := switchboard.Dial(context.Background(), "rediss://redis.internal:6380/0", switchboard.Options{
		Room:      "support",
		Transport: "redis-tenant-a",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	log.Printf("joined as %s; in the room: %v", client.Peer(), client.Peers())
}
