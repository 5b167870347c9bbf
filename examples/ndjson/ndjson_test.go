package ndjson_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/broker/brokertest"
	"github.com/switchboard-rtc/switchboard/examples/ndjson"
)

// lineConn is brokertest's view of one TCP connection: a line each way.
type lineConn struct {
	nc net.Conn
	r  *bufio.Scanner
}

func (c *lineConn) Send(ctx context.Context, data []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(append(append([]byte(nil), data...), '\n'))
	return err
}

func (c *lineConn) Recv(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	if !c.r.Scan() {
		if err := c.r.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	return append([]byte(nil), c.r.Bytes()...), nil
}

func (c *lineConn) Drop() error { return c.nc.Close() }

// start runs a broker made with opts and the transport in front of it, for
// the duration of t.
func start(t *testing.T, opts broker.Options) brokertest.Dialer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := broker.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := ndjson.New(ndjson.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Serve(ctx, ln, b) }()
	t.Cleanup(func() {
		b.Drain()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		b.Close(broker.ReasonTimeout)
	})
	addr := ln.Addr().String()
	return func(ctx context.Context) (brokertest.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		r := bufio.NewScanner(nc)
		r.Buffer(make([]byte, 4096), 4<<20)
		return &lineConn{nc: nc, r: r}, nil
	}
}

// TestConformance runs the broker's conformance kit against the transport.
func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{Start: start})
}

// TestRegistered: importing the package registers the transport, and the
// node can make it from its options.
func TestRegistered(t *testing.T) {
	tr, err := broker.NewTransport(ndjson.Name, &ndjson.Options{Listen: "127.0.0.1:0"}, broker.TransportOptions{})
	if err != nil || tr.Name() != ndjson.Name {
		t.Fatalf("%v %v", tr, err)
	}
	if err := tr.(broker.ReadyChecker).Ready(); err == nil {
		t.Fatal("ready before it listens")
	}
}
