package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
)

// Example_readLoop is how a transport reads a session's outbound frames:
// the one way, used by every connection-oriented transport. After the join
// it attaches the connection, writes the welcome, then loops on
// Attachment.Pending:
//
//   - frames come in order: seq-less replies first (pong, the ice-servers
//     answer: not kept for resume, not acknowledged), then numbered
//     messages, after+1 to last with no gap. Write them byte for byte and go
//     on from last. So the last last-after frames are the numbered ones: a
//     transport with flow control of its own counts them without parsing.
//   - with nothing to write, wait on the wait channel (more may be there),
//     Gone (superseded, or the session ended), or the connection's end.
//   - ErrSuperseded ends it (a newer connection of the session has it),
//     ErrSessionClosed ends it once everything was handed out, a
//     *broker.Error (session-expired) is written to the peer and ends it;
//     any other error is a cluster's store out of reach: try again soon.
//
// On the read side, Session.HandleRaw refuses bad envelopes by queuing an
// error to the peer (keep reading) and returns ErrSessionClosed once the
// session is over. ErrSessionMoved, an ErrSessionClosed, means a resume took
// the session to another node of the cluster: the connection is stale, so
// end it (a transport whose requests may reach any node, such as HTTP
// long-polling, looks the session up again with Broker.Session instead).
func Example_readLoop() {
	b := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	joined, _ := b.Join(ctx, broker.JoinRequest{Room: "demo", Peer: "alice", Transport: "example"})
	sess := joined.Session
	att := sess.Attach() // this connection is the session's now
	defer att.Detach()
	write := func(frame []byte) {
		var env struct {
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
			From string `json:"from"`
		}
		_ = json.Unmarshal(frame, &env)
		if env.Seq == 0 {
			fmt.Printf("%s (no seq)\n", env.Type)
			return
		}
		if env.From != "" {
			fmt.Printf("%s seq %d from %s\n", env.Type, env.Seq, env.From)
			return
		}
		fmt.Printf("%s seq %d\n", env.Type, env.Seq)
	}
	write(joined.Welcome)

	// Meanwhile: bob joins and sends alice a message, alice pings, then leaves.
	bob, _ := b.Join(ctx, broker.JoinRequest{Room: "demo", Peer: "bob", Transport: "example"})
	_ = bob.Session.HandleRaw(ctx, []byte(`{"type":"message","to":"alice","payload":"hi"}`))
	_ = sess.HandleRaw(ctx, []byte(`{"type":"ping"}`))
	_ = sess.HandleRaw(ctx, []byte(`{"type":"leave"}`))

	after := joined.After
	for {
		frames, last, wait, err := att.Pending(after)
		var pe *broker.Error
		switch {
		case errors.Is(err, broker.ErrSuperseded):
			fmt.Println("superseded: close without a word")
			return
		case errors.Is(err, broker.ErrSessionClosed):
			fmt.Println("session over, everything written: close")
			return
		case errors.As(err, &pe):
			fmt.Println("write", pe.Code, "and close")
			return
		case err != nil:
			time.Sleep(time.Second) // the store is out of reach: again
			continue
		}
		seqless := len(frames) - int(last-after)
		for i, f := range frames {
			if i == seqless && seqless > 0 {
				fmt.Printf("(%d seq-less, then %d numbered)\n", seqless, len(frames)-seqless)
			}
			write(f)
		}
		after = last
		if len(frames) == 0 {
			select {
			case <-wait:
			case <-att.Gone():
			}
		}
	}
	// Output:
	// welcome seq 1
	// pong (no seq)
	// (1 seq-less, then 2 numbered)
	// peer-joined seq 2
	// message seq 3 from bob
	// session over, everything written: close
}
