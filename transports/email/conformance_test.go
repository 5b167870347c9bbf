package email

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/transports/email/mailserver"
)

// TestConformance runs the transport conformance kit over email: each peer
// is a mailbox on the embedded mail server that mails the broker through
// SMTP; the broker reads its own mailbox over IMAP IDLE.
func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		Start: func(t *testing.T, opts broker.Options) brokertest.Dialer {
			r := newRig(t, Options{}, opts)
			h := &mailHarness{srv: r.tr.MailServer(), smtp: r.smtp}
			return h.dial
		},
		Skip: map[string]string{
			"ResumeTooLate": "an email peer has no connection to lose: its session ends when it mails nothing for idle_timeout (TestIdleTimeout), and cannot be resumed after",
		},
	})
}

// mailHarness makes the peers of one conformance test.
type mailHarness struct {
	srv  *mailserver.Server
	smtp string
	n    atomic.Int64

	mu      sync.Mutex
	dropped []string // addresses of dropped peers that had a session
}

// dial makes a peer: a fresh address, or the address of a peer that was
// dropped, as a peer coming back to resume its session would.
func (h *mailHarness) dial(ctx context.Context) (brokertest.Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &mailConn{h: h}
	if len(h.dropped) > 0 {
		c.addr, h.dropped = h.dropped[0], h.dropped[1:]
	} else {
		c.addr = fmt.Sprintf("peer%d@localhost", h.n.Add(1))
	}
	c.read = len(h.srv.Messages(c.addr))
	return c, nil
}

// mailConn is one peer of the conformance kit over email.
type mailConn struct {
	h       *mailHarness
	addr    string
	session string
	read    int      // mails of the mailbox read so far
	queue   [][]byte // envelopes read, not yet returned
	joined  bool     // the welcome (or the join's refusal) came
	dropped atomic.Bool
}

func (c *mailConn) Send(ctx context.Context, data []byte) error {
	sc, err := smtp.Dial(c.h.smtp)
	if err != nil {
		return err
	}
	defer sc.Close()
	return sc.SendMail(c.addr, []string{DefaultAddress}, bytes.NewReader(peerMail(c.addr, DefaultAddress, c.session, string(data))))
}

func (c *mailConn) Recv(ctx context.Context) ([]byte, error) {
	for len(c.queue) == 0 {
		msgs, err := c.h.srv.WaitMessages(ctx, c.addr, c.read)
		if err != nil {
			return nil, err
		}
		for _, raw := range msgs[c.read:] {
			envs, err := brokerEnvelopes(raw)
			if err != nil {
				return nil, err
			}
			for _, e := range envs {
				var h struct {
					Type    string `json:"type"`
					Seq     uint64 `json:"seq"`
					Payload struct {
						Session string `json:"session"`
					} `json:"payload"`
				}
				_ = json.Unmarshal(e, &h)
				if !c.joined {
					// Mail for an earlier life of this address (a session
					// being resumed) comes before this join's answer.
					if h.Type != broker.TypeWelcome && !(h.Type == broker.TypeError && h.Seq == 0) {
						continue
					}
					c.joined = true
				}
				if h.Type == broker.TypeWelcome {
					c.session = h.Payload.Session
				}
				c.queue = append(c.queue, e)
			}
		}
		c.read = len(msgs)
	}
	e := c.queue[0]
	c.queue = c.queue[1:]
	return e, nil
}

// Drop forgets the peer; a later dial takes its address to resume.
func (c *mailConn) Drop() error {
	if c.dropped.Swap(true) || c.session == "" {
		return nil
	}
	c.h.mu.Lock()
	c.h.dropped = append(c.h.dropped, c.addr)
	c.h.mu.Unlock()
	return nil
}

// brokerEnvelopes returns the JSON array of a mail from the broker.
func brokerEnvelopes(raw []byte) ([]json.RawMessage, error) {
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	body, err := findEnvelopes(ent)
	if err != nil {
		return nil, err
	}
	var envs []json.RawMessage
	return envs, json.Unmarshal(body, &envs)
}
