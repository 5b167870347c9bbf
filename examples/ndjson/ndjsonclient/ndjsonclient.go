// Package ndjsonclient adds the ndjson transport (package ndjson, beside
// this one) to the Switchboard Go client, the way the client's own
// transports are added: importing it registers the transport under the
// name "ndjson", and the broker URL is tcp://host:port.
//
//	import _ "github.com/switchboard-rtc/switchboard/examples/ndjson/ndjsonclient"
//
//	c, err := switchboard.Dial(ctx, "tcp://127.0.0.1:7070",
//		switchboard.Options{Room: "demo", Transport: "ndjson"})
package ndjsonclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	switchboard "github.com/switchboard-rtc/switchboard/clients/go"
)

func init() { switchboard.RegisterTransport("ndjson", Dial) }

// maxLine is the longest line the client reads from the broker.
const maxLine = 4 << 20

// Dial is the transport's switchboard.DialFunc: it connects to base
// (tcp://host:port), sends join and waits for the welcome.
func Dial(ctx context.Context, base *url.URL, join switchboard.Envelope, opts *switchboard.Options) (switchboard.Conn, switchboard.Envelope, error) {
	if base.Scheme != "tcp" {
		return nil, switchboard.Envelope{}, fmt.Errorf("ndjson: want a tcp://host:port URL, not %s", base.Redacted())
	}
	dial := opts.NetDialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	hctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	nc, err := dial(hctx, "tcp", base.Host)
	if err != nil {
		return nil, switchboard.Envelope{}, fmt.Errorf("ndjson: %w", err)
	}
	stop := context.AfterFunc(hctx, func() { nc.Close() })
	defer stop()
	c := &conn{nc: nc, r: bufio.NewScanner(nc), opts: opts}
	c.r.Buffer(make([]byte, 4096), maxLine)
	if err := c.Send(hctx, []switchboard.Envelope{join}); err != nil {
		nc.Close()
		return nil, switchboard.Envelope{}, err
	}
	envs, err := c.Recv(hctx)
	if err != nil {
		nc.Close()
		return nil, switchboard.Envelope{}, fmt.Errorf("ndjson: waiting for welcome: %w", err)
	}
	switch w := envs[0]; w.Type {
	case switchboard.TypeWelcome:
		if !stop() {
			nc.Close()
			return nil, switchboard.Envelope{}, hctx.Err()
		}
		return c, w, nil
	case switchboard.TypeError:
		nc.Close()
		return nil, switchboard.Envelope{}, w.Err()
	default:
		nc.Close()
		return nil, switchboard.Envelope{}, fmt.Errorf("ndjson: broker answered join with %q", w.Type)
	}
}

// conn is one TCP connection: one envelope per line each way.
type conn struct {
	nc   net.Conn
	r    *bufio.Scanner
	opts *switchboard.Options
	wmu  sync.Mutex
}

// Send writes one line per envelope.
func (c *conn) Send(ctx context.Context, envs []switchboard.Envelope) error {
	var buf []byte
	for _, env := range envs {
		data, err := json.Marshal(env)
		if err != nil {
			return err
		}
		buf = append(append(buf, data...), '\n')
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline := time.Now().Add(c.opts.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetWriteDeadline(deadline)
	if _, err := c.nc.Write(buf); err != nil {
		return fmt.Errorf("ndjson: %w", err)
	}
	return nil
}

// Recv reads the next line. The broker sends nothing on a quiet session, so
// there is no read deadline: the client's pings find a dead connection.
func (c *conn) Recv(ctx context.Context) ([]switchboard.Envelope, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	if !c.r.Scan() {
		err := c.r.Err()
		if err == nil {
			err = errors.New("connection closed by the broker")
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ndjson: %w", err)
	}
	var env switchboard.Envelope
	if err := json.Unmarshal(c.r.Bytes(), &env); err != nil {
		return nil, fmt.Errorf("ndjson: malformed envelope from the broker: %w", err)
	}
	return []switchboard.Envelope{env}, nil
}

// Ack sends an ack envelope.
func (c *conn) Ack(ctx context.Context, seq uint64) error {
	payload, _ := json.Marshal(map[string]uint64{"seq": seq})
	return c.Send(ctx, []switchboard.Envelope{{Type: "ack", Payload: payload}})
}

// Close ends the connection, after a leave when leave is set.
func (c *conn) Close(leave bool) error {
	if leave {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Send(ctx, []switchboard.Envelope{{Type: "leave"}})
		cancel()
	}
	return c.nc.Close()
}
