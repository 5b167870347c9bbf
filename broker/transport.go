// This file owns what a transport is to the core: the Transport interface,
// the registry of transports by name, and their shared options. An
// envelope's path starts in a transport, which joins its peer (join.go) and
// hands the core what the peer sends (session_in.go).

package broker

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"sync"
)

// Transport carries envelopes between peers and the broker over one kind of
// wire. Optional powers are add-on interfaces that the node finds by type
// assertion: [HTTPTransport] (routes on the node's HTTP port) and
// [ReadyChecker] (a dependency that can be down).
type Transport interface {
	// Name is the transport's registered name, e.g. "websocket".
	Name() string
	// Run serves peers until ctx ends, then tells them and drains: it
	// returns once every goroutine it started has ended.
	Run(ctx context.Context, b *Broker) error
}

// HTTPTransport is a Transport served on the node's HTTP port, beside the
// other HTTP transports, /healthz, /readyz, /metrics and the demo page.
//
// The node calls Mount once, before Run, with the broker that Run will get:
// the broker is given here too because requests may arrive before Run has
// started.
type HTTPTransport interface {
	Transport
	// Mount adds the transport's routes to mux.
	Mount(mux Mux, b *Broker)
}

// Mux is where an [HTTPTransport] adds its routes. Both *http.ServeMux and a
// chi router satisfy it, so an adapter needs no router library. Patterns are
// written "METHOD /path/{name}", with literal segments and whole-segment
// {name} wildcards only (the syntax both routers read); a handler reads a
// wildcard with r.PathValue("name").
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// ReadyChecker is a Transport that depends on something that can be down (a
// Redis server, a mail server). The node's /readyz answers 503 while Ready
// returns an error, and names the transport with it.
type ReadyChecker interface {
	// Ready returns nil while the transport can serve, else what is wrong.
	// It must be quick and safe for concurrent use.
	Ready() error
}

// TransportOptions are the node-wide settings that every transport receives
// from the node beside its own options (its section of the config file). A
// transport applies them where its own options leave a field unset.
type TransportOptions struct {
	// AllowedOrigins is the node's browser origin allow-list (the top-level
	// allowed_origins setting), for transports that check origins: empty
	// allows the same origin only, "*" any origin.
	AllowedOrigins []string
	// PublicOrigins, Listen and TrustProxy complete the origin policy of
	// transports that check origins (see package transports/origin): the
	// origins browsers reach the node at (public_origins), its listen
	// address, and whether X-Forwarded-Proto is trusted (trust_proxy).
	PublicOrigins []string
	Listen        string
	TrustProxy    bool
	// Redis is the cluster's Redis deployment (the cluster section), for
	// transports on Redis that name none of their own. Zero when the node is
	// not in cluster mode.
	Redis RedisOptions
}

// RedisOptions name a Redis deployment.
type RedisOptions struct {
	URL        string   // one Redis: redis://host:6379/0 (or rediss://, unix://)
	Addrs      []string // or a Redis Cluster's seed nodes, or Sentinels with MasterName
	MasterName string   // the Sentinels' primary
}

// IsZero reports whether r names no deployment.
func (r RedisOptions) IsZero() bool { return r.URL == "" && len(r.Addrs) == 0 }

// registration is one registered transport.
type registration struct {
	options reflect.Type // its options struct
	build   func(opts any, shared TransportOptions) (Transport, error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]registration{}
)

// Register makes a transport available by name, the way database/sql
// drivers do: a transport package calls it from its init, and a binary that
// imports the package can run the transport.
//
// O is the transport's options struct. The node fills a new O from the
// transport's section of the config file (transports: {name: {...}}, by the
// fields' yaml tags, unknown keys refused) and from the environment: each
// field has the variable SWITCHBOARD_TRANSPORTS_<NAME>_<KEY>, the name and
// the yaml key in upper case with "-" and "." as "_". Then it calls
// newTransport with it and the node-wide settings.
//
// Register panics if name is registered twice or O is not a struct.
func Register[O any](name string, newTransport func(opts O, shared TransportOptions) (Transport, error)) {
	t := reflect.TypeFor[O]()
	if t.Kind() != reflect.Struct {
		panic("broker: transport " + name + ": options must be a struct, not " + t.String())
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("broker: transport " + name + " registered twice")
	}
	registry[name] = registration{
		options: t,
		build: func(opts any, shared TransportOptions) (Transport, error) {
			o, ok := opts.(*O)
			if !ok {
				return nil, fmt.Errorf("broker: transport %s: options are %T, want *%s", name, opts, t)
			}
			return newTransport(*o, shared)
		},
	}
}

// NewTransportConfig returns a pointer to a new, zero options struct of the
// transport registered as name, for the node to fill from its configuration
// and pass to [NewTransport].
func NewTransportConfig(name string) (any, error) {
	reg, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return reflect.New(reg.options).Interface(), nil
}

// NewTransport makes the transport registered as name from opts (as
// [NewTransportConfig] returns it, filled in; nil for the zero options) and
// the node-wide settings.
func NewTransport(name string, opts any, shared TransportOptions) (Transport, error) {
	reg, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = reflect.New(reg.options).Interface()
	}
	shared.AllowedOrigins = slices.Clone(shared.AllowedOrigins)
	shared.PublicOrigins = slices.Clone(shared.PublicOrigins)
	shared.Redis.Addrs = slices.Clone(shared.Redis.Addrs)
	return reg.build(opts, shared)
}

func lookup(name string) (registration, error) {
	registryMu.RLock()
	reg, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return reg, fmt.Errorf("%w %q (registered: %v)", ErrUnknownTransport, name, Transports())
	}
	return reg, nil
}

// Transports lists the registered transport names, sorted.
func Transports() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
