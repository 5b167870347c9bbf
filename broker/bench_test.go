package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

var (
	benchOffer     = []byte(`{"v":1,"type":"offer","id":"m1","to":"bob","payload":{"type":"offer","sdp":"` + strings.Repeat("a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host\\r\\n", 24) + `"}}`)
	benchCandidate = []byte(`{"type":"candidate","to":"bob","payload":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.7 61665 typ srflx raddr 0.0.0.0 rport 0 generation 0","sdpMid":"0","sdpMLineIndex":0}}`)
)

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{{"offer", benchOffer}, {"candidate", benchCandidate}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if _, err := Decode(c.data, 64<<10); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeWithSeq(b *testing.B) {
	env, err := Decode(benchCandidate, 0)
	if err != nil {
		b.Fatal(err)
	}
	env.Room, env.From = "demo", "alice"
	b.ReportAllocs()
	for i := uint64(1); b.Loop(); i++ {
		_ = newFrame(env).withSeq(i)
	}
}

func BenchmarkMailbox(b *testing.B) {
	f := newFrame(&Envelope{Type: TypeCandidate, Room: "demo", From: "alice", To: "bob", Payload: []byte(`{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}`)})
	var m mailbox
	buf := make([]Stored, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		// append, hand out, acknowledge: one message's life in a mailbox
		if _, slow := m.push(f.body, 1024, 1<<20); slow {
			b.Fatal("slow consumer")
		}
		es, _ := m.after(m.last-1, maxBatch, buf[:0])
		m.ack(es[0].Seq)
	}
}

// BenchmarkRoute measures one relayed message from Handle to the receiver's
// Take, through the core with no transport.
func BenchmarkRoute(b *testing.B) {
	br := New(Options{Rate: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer br.Close(ReasonKicked)
	ctx := context.Background()
	join := func(peer string) (*Session, *Attachment) {
		j, err := br.Join(ctx, JoinRequest{Room: "bench", Peer: peer, Transport: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return j.Session, j.Session.Attach()
	}
	alice, _ := join("alice")
	_, bob := join("bob")
	env, _ := Decode(benchCandidate, 0)
	after := bob.s.LastSeq()
	b.ReportAllocs()
	for b.Loop() {
		e := *env
		if err := alice.Handle(ctx, &e); err != nil {
			b.Fatal(err)
		}
		frames, last, err := bob.Take(after)
		if err != nil || len(frames) != 1 {
			b.Fatal(fmt.Sprint(len(frames), err))
		}
		after = last
		_ = bob.s.Ack(after)
	}
}

// BenchmarkSplitArray splits a long-poll batch of 32 candidates.
func BenchmarkSplitArray(b *testing.B) {
	batch := []byte{'['}
	for i := range 32 {
		if i > 0 {
			batch = append(batch, ',')
		}
		batch = append(batch, benchCandidate...)
	}
	batch = append(batch, ']')
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if items, err := SplitArray(batch); err != nil || len(items) != 32 {
			b.Fatal(len(items), err)
		}
	}
}
