package broker

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxJoinClients is how many client addresses the join rate keeps apart;
// past it, new addresses share one bucket until the idle ones are swept.
const maxJoinClients = 65536

// joinLimiter is the per-client-address join rate (Options.JoinRate).
type joinLimiter struct {
	rate  float64 // < 0: off
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	shared  bucket // for addresses past maxJoinClients
	swept   time.Time
}

func newJoinLimiter(rate float64, burst int) *joinLimiter {
	return &joinLimiter{rate: rate, burst: burst, buckets: make(map[string]*bucket), shared: newBucket(rate, burst)}
}

// allow reports whether client may join now. An empty client is not limited.
func (l *joinLimiter) allow(client string, now time.Time) bool {
	if l.rate < 0 || client == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := l.buckets[client]
	if bk == nil {
		if len(l.buckets) >= maxJoinClients && now.Sub(l.swept) > time.Second {
			l.sweep(now)
		}
		if len(l.buckets) >= maxJoinClients {
			return l.shared.allow(now)
		}
		b := newBucket(l.rate, l.burst)
		bk = &b
		l.buckets[client] = bk
	}
	return bk.allow(now)
}

// sweep forgets the addresses whose buckets have filled up again: they
// would start afresh just the same.
func (l *joinLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}

// ClientAddr is the key of the join rate for a peer whose connection comes
// from remoteAddr (as net/http's Request.RemoteAddr gives it): its IP, or
// for IPv6 its /64, which one host commonly holds whole. A remoteAddr that
// is not an IP address is returned as it is.
func ClientAddr(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return remoteAddr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}
