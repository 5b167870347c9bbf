package broker

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Transport carries envelopes between peers and the broker over one kind of
// wire. Optional powers (mounting HTTP routes, say) are add-on interfaces that
// the caller finds by type assertion.
type Transport interface {
	// Name is the transport's registered name, e.g. "websocket".
	Name() string
	// Run serves peers until ctx ends, then tells them and drains.
	Run(ctx context.Context, b *Broker) error
}

// Factory makes a Transport from its configuration: decode fills a struct
// from the transport's section of the config file (nothing when absent).
type Factory func(decode func(v any) error) (Transport, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a transport available by name, to be picked and configured
// under `transports:` in the config file. It panics if name is registered twice.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("broker: transport " + name + " registered twice")
	}
	registry[name] = f
}

// NewTransport makes the transport registered as name.
func NewTransport(name string, decode func(v any) error) (Transport, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownType, name, Transports())
	}
	return f(decode)
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
