package switchboard

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
)

// Conn is one connection to the broker over some transport, made by a
// [DialFunc] with the session already joined. A Client uses one Conn at a
// time; when it breaks, the Client closes it and dials a new one that resumes
// the session.
//
// A Client calls Send and Ack from one goroutine and Recv from another; Close
// may be called at any time, from any goroutine, and must unblock Send, Recv
// and Ack.
type Conn interface {
	// Send writes envelopes to the broker, in order. A nil error means they
	// were written, not that the broker has them (see ConfirmingConn). An
	// error that is an *Error is the broker's refusal of them.
	Send(ctx context.Context, envs []Envelope) error
	// Recv returns the next envelopes from the broker, in order, blocking
	// until there is at least one or the connection fails.
	Recv(ctx context.Context) ([]Envelope, error)
	// Ack tells the broker that everything up to seq was received. A
	// transport on which receiving acknowledges by itself does nothing.
	Ack(ctx context.Context, seq uint64) error
	// Close ends the connection. With leave set, it first leaves the room,
	// which ends the session; without, the session stays open for a resume.
	Close(leave bool) error
}

// ConfirmingConn is a Conn whose Send returns nil only once the broker has
// accepted the envelopes, such as an HTTP POST answered 202. A Client neither
// confirms the sends of such a Conn with pings nor keeps it alive with them.
type ConfirmingConn interface {
	Conn
	// ConfirmsSends marks the Conn; it does nothing.
	ConfirmsSends()
}

// DialFunc connects to the broker at base (its base URL, as given to Dial),
// sends join and waits for the answer. It returns the connection and the
// welcome envelope, or an *Error when the broker refused the join. opts has
// its defaults applied and must not be changed.
type DialFunc func(ctx context.Context, base *url.URL, join Envelope, opts *Options) (Conn, Envelope, error)

var (
	transportsMu sync.RWMutex
	transports   = map[string]DialFunc{}
)

// RegisterTransport makes a transport available to Dial under name
// (Options.Transport). It panics if name is empty, dial is nil, or name is
// already registered. It is meant to be called from an init function.
func RegisterTransport(name string, dial DialFunc) {
	if name == "" || dial == nil {
		panic("switchboard: RegisterTransport with an empty name or a nil dialer")
	}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if _, dup := transports[name]; dup {
		panic(fmt.Sprintf("switchboard: transport %q registered twice", name))
	}
	transports[name] = dial
}

// Transports returns the names of the registered transports, sorted.
func Transports() []string {
	transportsMu.RLock()
	defer transportsMu.RUnlock()
	names := make([]string, 0, len(transports))
	for name := range transports {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func lookupTransport(name string) (DialFunc, error) {
	transportsMu.RLock()
	dial, ok := transports[name]
	transportsMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownTransport, name, Transports())
	}
	return dial, nil
}
