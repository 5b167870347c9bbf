// This file owns the Backplane interface, which connects the nodes of a
// cluster (membership and events), and the in-process MemoryBackplane.

package broker

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
)

// Member is one peer's presence in a room, as every node of a cluster sees it.
type Member struct {
	Peer    string          `json:"peer"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	Session string          `json:"session"` // the holder's session secret: never shown to peers
	Node    string          `json:"node"`
}

// EventKind says what an Event tells the other nodes.
type EventKind string

// The kinds of Event.
const (
	EventRelay  EventKind = "relay"  // a relayed envelope: for To, or every peer but From when To is empty
	EventJoined EventKind = "joined" // Peer entered the room (Meta is its meta)
	EventLeft   EventKind = "left"   // Peer left the room for Reason
	// With a Store:
	EventWake  EventKind = "wake"  // the store gave Seq to a message for Session (peer To)
	EventMoved EventKind = "moved" // Session (peer Peer) is now served by Node
	EventSlow  EventKind = "slow"  // Session (peer To) stopped taking its messages
	// EventResync is not published: a backplane hands it to its own node
	// when it has been cut off and may have missed events (Redis restarted,
	// say), so that the node looks at the store again.
	EventResync EventKind = "resync"
)

// Event is what one node tells the others about a room.
type Event struct {
	Kind    EventKind       `json:"kind"`
	Node    string          `json:"node"` // the node that published it
	Room    string          `json:"room"`
	Peer    string          `json:"peer,omitempty"`
	To      string          `json:"to,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Type    string          `json:"type,omitempty"`    // relay, wake: the envelope's type
	Body    []byte          `json:"body,omitempty"`    // relay, wake: the envelope, encoded without seq
	Session string          `json:"session,omitempty"` // wake, moved, slow: the session concerned
	Seq     uint64          `json:"seq,omitempty"`     // wake: the seq the message got
}

// Backplane connects the nodes of a cluster: it owns who is in which room
// and carries events between nodes. Implementations are safe for concurrent
// use; the Redis one lives in cluster/redis.
type Backplane interface {
	// Claim makes m the holder of its peer id in room, cluster-wide. It
	// fails with an *Error of CodePeerIDTaken when another session holds it.
	Claim(ctx context.Context, room string, m Member) error
	// Release gives the peer id up, if m's session still holds it.
	Release(ctx context.Context, room string, m Member) error
	// Members lists the peers in room, on every node.
	Members(ctx context.Context, room string) ([]Member, error)
	// Publish hands ev to every other node.
	Publish(ctx context.Context, ev Event) error
	// Subscribe calls fn, in order, with every event other nodes publish,
	// until the returned function is called.
	Subscribe(node string, fn func(Event)) (cancel func())
}

// MemoryBackplane is the in-process Backplane. One MemoryBackplane shared by
// several Brokers in one process makes them a cluster; a Broker given none
// makes its own. The zero value is ready to use.
type MemoryBackplane struct {
	mu sync.Mutex
	// rooms holds each room's members in the order they claimed their
	// ids: a slice, not a map, as most rooms have a few members and a map
	// of a few entries costs several times as much (it is most of the
	// broker's memory per idle peer after the session itself).
	rooms map[string][]Member
	subs  map[*memorySub]struct{}
}

var _ Backplane = (*MemoryBackplane)(nil)

type memorySub struct {
	node string
	mu   sync.Mutex
	q    []Event
	wake chan struct{}
	stop chan struct{}
}

// Claim implements Backplane.
func (m *MemoryBackplane) Claim(_ context.Context, room string, mem Member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms == nil {
		m.rooms = make(map[string][]Member)
	}
	r := m.rooms[room]
	if i := memberIndex(r, mem.Peer); i >= 0 {
		if r[i].Session != mem.Session {
			return Errorf(CodePeerIDTaken, "peer id %s is taken in room %s", mem.Peer, room)
		}
		r[i] = mem
		return nil
	}
	m.rooms[room] = append(r, mem)
	return nil
}

// Release implements Backplane.
func (m *MemoryBackplane) Release(_ context.Context, room string, mem Member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rooms[room]
	if i := memberIndex(r, mem.Peer); i >= 0 && r[i].Session == mem.Session {
		if len(r) == 1 {
			delete(m.rooms, room)
		} else {
			m.rooms[room] = slices.Delete(r, i, i+1)
		}
	}
	return nil
}

// Members implements Backplane.
func (m *MemoryBackplane) Members(_ context.Context, room string) ([]Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rooms[room]
	return append(make([]Member, 0, len(r)), r...), nil
}

// memberIndex returns the index of peer's entry in members, or -1.
func memberIndex(members []Member, peer string) int {
	return slices.IndexFunc(members, func(m Member) bool { return m.Peer == peer })
}

// Publish implements Backplane. It queues ev for every other node's
// subscriber without waiting for them.
func (m *MemoryBackplane) Publish(_ context.Context, ev Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs {
		if s.node == ev.Node {
			continue
		}
		s.mu.Lock()
		s.q = append(s.q, ev)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Subscribe implements Backplane.
func (m *MemoryBackplane) Subscribe(node string, fn func(Event)) (cancel func()) {
	s := &memorySub{node: node, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	m.mu.Lock()
	if m.subs == nil {
		m.subs = make(map[*memorySub]struct{})
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			}
			s.mu.Lock()
			q := s.q
			s.q = nil
			s.mu.Unlock()
			for _, ev := range q {
				fn(ev)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, s)
			m.mu.Unlock()
			close(s.stop)
			<-done
		})
	}
}
