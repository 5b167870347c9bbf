// Package keepalive marks the pings a client transport sends on its own
// (redisconn, emailconn) to keep its session alive, so that its Recv can
// hold back their pongs: the application never sent those pings.
package keepalive

import "encoding/json"

// Marker is the payload field that marks a connection's own pings, such as
// "switchboard_redis_keepalive".
type Marker string

// Payload is the payload of a keepalive ping: {"<m>": true}.
func (m Marker) Payload() json.RawMessage {
	b, _ := json.Marshal(map[string]bool{string(m): true})
	return b
}

// Is reports whether payload, a pong's, answers one of m's pings: an object
// whose only field is m.
func (m Marker) Is(payload json.RawMessage) bool {
	var p map[string]json.RawMessage
	if json.Unmarshal(payload, &p) != nil || len(p) != 1 {
		return false
	}
	_, ok := p[string(m)]
	return ok
}
