// Package transporttest dials Switchboard's HTTP transports at the wire
// level, for the conformance kit (broker/brokertest) and end-to-end tests:
// a raw WebSocket connection and a raw long-polling loop, with no client
// library logic in between.
package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/broker/brokertest"
)

// WebSocket dials the WebSocket transport at url (ws://host/v1/ws). Recv
// reads the socket only when called, so a peer that never calls it never
// reads.
func WebSocket(url string) brokertest.Dialer {
	return func(ctx context.Context) (brokertest.Conn, error) {
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return &WSConn{WS: ws}, nil
	}
}

// WSURL turns an http:// base URL into the ws:// URL of the WebSocket transport.
func WSURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/v1/ws"
}

// WSConn is a WebSocket peer connection. Send is safe for concurrent use.
type WSConn struct {
	WS *websocket.Conn
	mu sync.Mutex // serialises writes
}

// Send implements brokertest.Conn.
func (c *WSConn) Send(ctx context.Context, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, _ := ctx.Deadline()
	_ = c.WS.SetWriteDeadline(d)
	return c.WS.WriteMessage(websocket.TextMessage, data)
}

// Recv implements brokertest.Conn.
func (c *WSConn) Recv(ctx context.Context) ([]byte, error) {
	d, _ := ctx.Deadline()
	_ = c.WS.SetReadDeadline(d)
	_, data, err := c.WS.ReadMessage()
	return data, err
}

// Drop implements brokertest.Conn: it closes the TCP connection with no
// closing handshake.
func (c *WSConn) Drop() error { return c.WS.UnderlyingConn().Close() }

// LongPoll dials the long-polling transport at base (http://host).
func LongPoll(base string) brokertest.Dialer {
	return func(context.Context) (brokertest.Conn, error) { return &LPConn{Base: base}, nil }
}

// LPConn is a long-polling peer: Send posts, Recv polls when it has nothing
// queued. Refusals the HTTP layer answers itself (4xx bodies) are queued for
// Recv like envelopes.
type LPConn struct {
	Base   string
	Client *http.Client // default http.DefaultClient

	mu      sync.Mutex
	session string
	after   uint64
	queue   [][]byte
	dropped bool
}

// Session is the session secret, once joined.
func (c *LPConn) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *LPConn) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Send implements brokertest.Conn.
func (c *LPConn) Send(ctx context.Context, data []byte) error {
	c.mu.Lock()
	session := c.session
	c.mu.Unlock()
	if session == "" {
		status, body, err := c.do(ctx, "POST", "/v1/sessions", data)
		if err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.queue = append(c.queue, body)
		if status == http.StatusCreated || status == http.StatusOK {
			var w struct {
				Seq     uint64 `json:"seq"`
				Payload struct {
					Session string `json:"session"`
				} `json:"payload"`
			}
			var j struct {
				Payload struct {
					Resume struct {
						LastSeq uint64 `json:"last_seq"`
					} `json:"resume"`
				} `json:"payload"`
			}
			_ = json.Unmarshal(body, &w)
			_ = json.Unmarshal(data, &j)
			c.session, c.after = w.Payload.Session, max(w.Seq, j.Payload.Resume.LastSeq)
		}
		return nil
	}
	status, body, err := c.do(ctx, "POST", "/v1/sessions/"+session+"/messages", data)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		c.mu.Lock()
		c.queue = append(c.queue, body)
		c.mu.Unlock()
	}
	return nil
}

// Recv implements brokertest.Conn.
func (c *LPConn) Recv(ctx context.Context) ([]byte, error) {
	for {
		c.mu.Lock()
		if c.dropped {
			c.mu.Unlock()
			return nil, net.ErrClosed
		}
		if len(c.queue) > 0 {
			data := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return data, nil
		}
		path := fmt.Sprintf("/v1/sessions/%s/messages?after=%d&wait=2", c.session, c.after)
		c.mu.Unlock()
		status, body, err := c.do(ctx, "GET", path, nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return body, nil
		}
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			return nil, fmt.Errorf("poll answered %q: %w", body, err)
		}
		c.mu.Lock()
		for _, m := range batch {
			var s struct {
				Seq uint64 `json:"seq"`
			}
			_ = json.Unmarshal(m, &s)
			c.after = max(c.after, s.Seq)
			c.queue = append(c.queue, m)
		}
		c.mu.Unlock()
	}
}

// Drop implements brokertest.Conn: the peer stops polling and posting.
func (c *LPConn) Drop() error {
	c.mu.Lock()
	c.dropped = true
	c.mu.Unlock()
	return nil
}
