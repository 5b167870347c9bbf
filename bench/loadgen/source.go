package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
)

// sources spreads a run's connections over several local addresses. A TCP
// connection is named by its two addresses and ports, so one local address
// reaches one server port with at most as many connections as there are
// ephemeral ports (about 28,000 on Linux), fewer while the last run's
// connections linger in TIME_WAIT; 127.0.0.0/8 is all loopback, and every
// one of its addresses brings as many again. It is safe for concurrent use.
type sources struct {
	ips  []net.IP // nil: let the system choose
	next atomic.Uint64
}

// newSources returns the sources for n local addresses when dialing u's
// host: 127.0.0.1 … 127.0.0.n for a loopback server, none (the system's
// choice) for n ≤ 1. More than one address for another host is refused:
// the load generator cannot know which of its addresses reach it.
func newSources(n int, u string) (*sources, error) {
	s := new(sources)
	if n <= 1 {
		return s, nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	host := p.Hostname()
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("loadgen: -source-addrs %d needs an IPv4 loopback server, not %q", n, host)
	}
	if n > 254 {
		return nil, fmt.Errorf("loadgen: -source-addrs %d: at most 254", n)
	}
	for i := 1; i <= n; i++ {
		s.ips = append(s.ips, net.IPv4(127, 0, 0, byte(i)))
	}
	return s, nil
}

// dialer returns a dialer bound to the next local address, in turn.
func (s *sources) dialer() *net.Dialer {
	if s == nil || len(s.ips) == 0 {
		return &net.Dialer{}
	}
	ip := s.ips[(s.next.Add(1)-1)%uint64(len(s.ips))]
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
}

// dial connects to address over network from the next local address.
func (s *sources) dial(ctx context.Context, network, address string) (net.Conn, error) {
	return s.dialer().DialContext(ctx, network, address)
}
