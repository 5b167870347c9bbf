package redistest

import (
	"testing"
	"time"

	clusterredis "github.com/switchboard-rtc/switchboard/cluster/redis"
)

// NewBackplane returns a cluster backplane on s with prefix (through addr
// when it is not empty, e.g. a proxy) and nodeTTL (0: the default), closed
// when the test ends.
func NewBackplane(t testing.TB, s *Server, prefix string, nodeTTL time.Duration, addr ...string) *clusterredis.Backplane {
	t.Helper()
	url := s.URL()
	if len(addr) > 0 {
		url = "redis://" + addr[0] + "/0"
	}
	bp, err := clusterredis.NewBackplane(clusterredis.BackplaneOptions{
		ClientOptions: clusterredis.ClientOptions{URL: url},
		Prefix:        prefix,
		NodeTTL:       nodeTTL,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bp.Close() })
	return bp
}
