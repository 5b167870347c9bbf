package switchboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
	"github.com/switchboard-rtc/switchboard/clients/go/internal/testbroker"
)

var transportNames = []string{"websocket", "longpoll"}

func startBroker(t *testing.T, opts testbroker.Options) *testbroker.Server {
	t.Helper()
	srv, err := testbroker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// cutter is a client-side dialer whose connections a test can cut, to break
// one client's link and not the others'.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	return conn, nil
}

// cut closes every connection dialed so far.
func (c *cutter) cut() int {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	return len(conns)
}

func dial(t *testing.T, url string, opts switchboard.Options) *switchboard.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts.BackoffMin == 0 {
		opts.BackoffMin = 20 * time.Millisecond
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = 200 * time.Millisecond
	}
	if opts.PollWait == 0 {
		opts.PollWait = 2 * time.Second
	}
	c, err := switchboard.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s as %q: %v", opts.Transport, opts.Peer, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv returns the next envelope, skipping the types in skip.
func recv(t *testing.T, c *switchboard.Client, skip ...string) switchboard.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		env, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s: recv: %v", c.Peer(), err)
		}
		if !contains(skip, env.Type) {
			return env
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestJoinAndRelay(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, ta := range transportNames {
		for _, tb := range transportNames {
			t.Run(ta+"-"+tb, func(t *testing.T) {
				room := "relay-" + ta + "-" + tb
				a := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice", Transport: ta, Meta: map[string]any{"name": "Alice"}})
				b := dial(t, srv.URL, switchboard.Options{Room: room, Peer: "bob", Transport: tb})
				if got := b.Peers(); len(got) != 1 || got[0].Peer != "alice" || got[0].Meta["name"] != "Alice" {
					t.Fatalf("bob sees peers %+v", got)
				}
				env := recv(t, a)
				if env.Type != switchboard.TypePeerJoined {
					t.Fatalf("alice got %+v, want peer-joined", env)
				}
				if got := a.Peers(); len(got) != 1 || got[0].Peer != "bob" {
					t.Fatalf("alice sees peers %+v", got)
				}
				ctx := context.Background()
				mid := "0"
				idx := uint16(0)
				if err := a.SendOffer(ctx, "bob", switchboard.SessionDescription{SDP: "v=0\r\n"}); err != nil {
					t.Fatal(err)
				}
				if err := a.SendCandidate(ctx, "bob", &switchboard.ICECandidateInit{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", SDPMid: &mid, SDPMLineIndex: &idx}); err != nil {
					t.Fatal(err)
				}
				if err := a.SendCandidate(ctx, "bob", nil); err != nil {
					t.Fatal(err)
				}
				if err := a.SendMessage(ctx, "", map[string]string{"hello": "room"}); err != nil {
					t.Fatal(err)
				}
				offer := recv(t, b)
				sd, err := offer.Description()
				if err != nil || offer.Type != "offer" || offer.From != "alice" || sd.Type != "offer" || sd.SDP != "v=0\r\n" {
					t.Fatalf("bob got %+v (%+v, %v)", offer, sd, err)
				}
				cand, err := recv(t, b).Candidate()
				if err != nil || cand == nil || *cand.SDPMid != "0" || *cand.SDPMLineIndex != 0 || cand.UsernameFragment != nil {
					t.Fatalf("candidate %+v, %v", cand, err)
				}
				end := recv(t, b)
				if cand, err := end.Candidate(); err != nil || cand != nil || string(end.Payload) != "null" {
					t.Fatalf("end of candidates %+v: %+v, %v", end, cand, err)
				}
				msg := recv(t, b)
				if msg.Type != "message" || msg.To != "" || msg.Room != room || msg.Seq == 0 {
					t.Fatalf("message %+v", msg)
				}
				var p map[string]string
				if err := msg.Decode(&p); err != nil || p["hello"] != "room" {
					t.Fatalf("message payload %s", msg.Payload)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				left := recv(t, a)
				var pl switchboard.PeerLeft
				if left.Type != switchboard.TypePeerLeft || left.Decode(&pl) != nil || pl.Peer != "bob" || pl.Reason != "leave" {
					t.Fatalf("alice got %+v, want peer-left bob leave", left)
				}
				if len(a.Peers()) != 0 {
					t.Fatalf("alice still sees %+v", a.Peers())
				}
				if _, err := b.Recv(ctx); !errors.Is(err, switchboard.ErrClosed) {
					t.Fatalf("recv after close: %v", err)
				}
			})
		}
	}
}

func TestJoinRefused(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			room := "refused-" + tr
			dial(t, srv.URL, switchboard.Options{Room: room, Peer: "alice", Transport: tr})
			_, err := switchboard.Dial(context.Background(), srv.URL, switchboard.Options{Room: room, Peer: "alice", Transport: tr})
			var pe *switchboard.Error
			if !errors.As(err, &pe) || pe.Code != switchboard.CodePeerIDTaken {
				t.Fatalf("second alice: %v, want peer-id-taken", err)
			}
			_, err = switchboard.Dial(context.Background(), srv.URL, switchboard.Options{Room: "bad room!", Transport: tr})
			if !errors.As(err, &pe) || pe.Code != switchboard.CodeBadRequest {
				t.Fatalf("bad room: %v, want bad-request", err)
			}
		})
	}
}

func TestBrokerErrorCarriesRef(t *testing.T) {
	srv := startBroker(t, testbroker.Options{Broker: broker.Options{OfflineHold: 100 * time.Millisecond}})
	for _, tr := range transportNames {
		t.Run(tr, func(t *testing.T) {
			a := dial(t, srv.URL, switchboard.Options{Room: "ref-" + tr, Transport: tr})
			if a.Peer() == "" || a.Session() == "" {
				t.Fatalf("peer %q session %q", a.Peer(), a.Session())
			}
			err := a.Send(context.Background(), switchboard.Envelope{Type: "offer", ID: "my-offer", To: "nobody", Payload: json.RawMessage(`{"type":"offer","sdp":""}`)})
			if err != nil {
				t.Fatal(err)
			}
			env := recv(t, a)
			var pe *switchboard.Error
			if !errors.As(env.Err(), &pe) || pe.Code != switchboard.CodePeerUnavailable || pe.Ref != "my-offer" {
				t.Fatalf("got %+v (%v), want peer-unavailable for my-offer", env, env.Err())
			}
		})
	}
}

func TestRecvHonoursContext(t *testing.T) {
	srv := startBroker(t, testbroker.Options{})
	a := dial(t, srv.URL, switchboard.Options{Room: "ctx"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("recv: %v", err)
	}
}
