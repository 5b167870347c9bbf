package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker/brokertest"
)

// Errors of Conn.Send.
var (
	// ErrNotJoin refuses a first envelope that is not a join with an object
	// payload: only such a join can carry the reply channel, and without one
	// the broker has nowhere to answer.
	ErrNotJoin = errors.New("redistest: the first envelope must be a join whose payload is an object")
	// ErrNoBroker means no broker subscribes to the input channel: PUBLISH
	// reached nobody until the context ended.
	ErrNoBroker = errors.New("redistest: no broker is listening on the input channel")
)

// Dial returns a dialer of the Redis transport whose channels start with
// prefix, through client.
func Dial(client redis.UniversalClient, prefix string) brokertest.Dialer {
	return DialWith(client, prefix, Options{})
}

// Options are what a Conn may do beyond the bare wire protocol, as a client
// library does.
type Options struct {
	// KeepAlive, if positive, makes a joined Conn publish a ping this often,
	// as a client does to stay within the broker's idle timeout. The pongs
	// that answer these pings are not returned by Recv.
	KeepAlive time.Duration
	// Resume makes the Conn recover what pub/sub may lose when Redis or the
	// network fails: when its subscription is restored after a drop, or an
	// envelope's seq skips one, it resumes its session with the last seq it
	// has (the broker publishes everything after it again), and it drops
	// envelopes whose seq it already has. Recv returns neither the resumed
	// welcome nor the gap.
	Resume bool
}

// DialWith is Dial with opts.
func DialWith(client redis.UniversalClient, prefix string, opts Options) brokertest.Dialer {
	return func(ctx context.Context) (brokertest.Conn, error) {
		c, err := dialConn(ctx, client, prefix, opts)
		if err == nil && opts.KeepAlive > 0 {
			go c.keepAlive(opts.KeepAlive)
		}
		return c, err
	}
}

// keepAlivePayload is the payload of keepalive pings.
const keepAlivePayload = `"redistest-keepalive"`

func (c *Conn) keepAlive(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		session := c.session
		c.mu.Unlock()
		if session == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		_ = Publish(ctx, c.client, c.prefix+":in", withSession([]byte(`{"type":"ping","payload":`+keepAlivePayload+`}`), session))
		cancel()
	}
}

// isKeepAlivePong reports whether data is the pong of a keepalive ping.
func isKeepAlivePong(data []byte) bool {
	if !bytes.Contains(data, []byte(keepAlivePayload)) {
		return false
	}
	var env struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	return json.Unmarshal(data, &env) == nil && env.Type == "pong" && string(env.Payload) == keepAlivePayload
}

// Conn is one peer of the Redis transport, speaking the wire protocol as a
// service with only a Redis connection would (docs/protocol.md, section 3):
//
//   - Before its join it subscribes to a reply channel of its own,
//     prefix:reply:<random>, and, when the join names the peer, to its peer
//     channel prefix:peer:<room>:<peer>; then it publishes the join, with
//     "reply" added to its payload, to prefix:in.
//   - When the welcome arrives it keeps the session secret, and subscribes to
//     the peer channel if the broker chose the peer id. (The broker publishes
//     nothing there until someone listens, so nothing is missed.) What
//     arrives on the peer channel before the welcome is dropped: it may be an
//     earlier connection's, when the join resumes a session, and the broker
//     publishes everything after last_seq again once the welcome is out.
//   - Every later envelope goes to prefix:in with a top-level "session".
//   - A PUBLISH that reaches no subscriber did not reach a broker: Send
//     publishes again, with backoff, until the context ends.
//
// Recv returns the envelopes of both channels in the order Redis delivers
// them, which is the order the broker published them. A Conn does not
// acknowledge on its own; a client library sends {"type":"ack"} as it does
// on WebSocket. Conn is safe for one sender and one receiver at a time.
type Conn struct {
	client redis.UniversalClient
	prefix string
	reply  string
	opts   Options
	ps     *redis.PubSub
	done   chan struct{}

	mu       sync.Mutex
	session  string
	room     string
	peer     string
	peerChan string // subscribed peer channel, once known
	welcomed bool   // the join's welcome has arrived
	last     uint64 // with Resume: the last seq taken
	resuming time.Time
	queue    [][]byte
	wake     chan struct{}
	dropped  bool
}

// DialConn subscribes to a fresh reply channel and returns the Conn, ready
// to send its join.
func DialConn(ctx context.Context, client redis.UniversalClient, prefix string) (*Conn, error) {
	return dialConn(ctx, client, prefix, Options{})
}

func dialConn(ctx context.Context, client redis.UniversalClient, prefix string, opts Options) (*Conn, error) {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	c := &Conn{
		client: client,
		prefix: prefix,
		reply:  prefix + ":reply:" + hex.EncodeToString(id),
		opts:   opts,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	c.ps = client.Subscribe(ctx, c.reply)
	if _, err := c.ps.ReceiveTimeout(ctx, 5*time.Second); err != nil { // the subscription's confirmation
		_ = c.ps.Close()
		return nil, fmt.Errorf("redistest: subscribing to %s: %w", c.reply, err)
	}
	msgs := c.ps.ChannelWithSubscriptions(redis.WithChannelSize(4096), redis.WithChannelHealthCheckInterval(time.Second))
	go c.read(msgs)
	return c, nil
}

// Session is the session secret, once joined.
func (c *Conn) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// ReplyChannel is the channel on which this Conn hears the answer to its join.
func (c *Conn) ReplyChannel() string { return c.reply }

func (c *Conn) read(msgs <-chan any) {
	defer close(c.done)
	for msg := range msgs {
		switch m := msg.(type) {
		case *redis.Subscription:
			// Only a restored connection confirms the reply channel again.
			if m.Kind == "subscribe" && m.Channel == c.reply && c.opts.Resume {
				c.resume()
			}
		case *redis.Message:
			if data, ok := c.take(m); ok {
				c.mu.Lock()
				c.queue = append(c.queue, data)
				c.mu.Unlock()
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// take decides whether a message is one for Recv.
func (c *Conn) take(m *redis.Message) ([]byte, bool) {
	data := []byte(m.Payload)
	if m.Channel == c.reply {
		return data, c.welcome(data)
	}
	c.mu.Lock()
	early := !c.welcomed
	c.mu.Unlock()
	if early || isKeepAlivePong(data) {
		// Before the welcome, the peer channel may carry what an earlier
		// connection of a resumed session was being sent; the broker sends
		// it all again after the welcome.
		return nil, false
	}
	if !c.opts.Resume {
		return data, true
	}
	var env struct {
		Seq uint64 `json:"seq"`
	}
	_ = json.Unmarshal(data, &env)
	if env.Seq == 0 {
		return data, true
	}
	c.mu.Lock()
	last := c.last
	if env.Seq == last+1 {
		c.last = env.Seq
	}
	c.mu.Unlock()
	switch {
	case env.Seq <= last:
		return nil, false // had it
	case env.Seq > last+1:
		c.resume()
		return nil, false
	}
	return data, true
}

// resume asks the broker, in the background, to publish again everything
// after the last seq taken. One resume at a time: another waits until the
// first is answered, or for 5 s.
func (c *Conn) resume() {
	c.mu.Lock()
	if c.session == "" || c.dropped || time.Since(c.resuming) < 5*time.Second {
		c.mu.Unlock()
		return
	}
	c.resuming = time.Now()
	c.welcomed = false
	join, _ := json.Marshal(map[string]any{
		"type": "join", "room": c.room,
		"payload": map[string]any{
			"peer": c.peer, "reply": c.reply,
			"resume": map[string]any{"session": c.session, "last_seq": c.last},
		},
	})
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = Publish(ctx, c.client, c.prefix+":in", join)
	}()
}

// welcome keeps the session of a welcome and listens on its peer channel.
// It reports whether Recv returns the message: not the welcome of a resume
// the Conn made by itself.
func (c *Conn) welcome(data []byte) bool {
	var w struct {
		Type    string `json:"type"`
		Room    string `json:"room"`
		Seq     uint64 `json:"seq"`
		Payload struct {
			Peer    string `json:"peer"`
			Session string `json:"session"`
			Resumed bool   `json:"resumed"`
		} `json:"payload"`
	}
	if json.Unmarshal(data, &w) != nil || w.Type != "welcome" {
		return true
	}
	ch := c.prefix + ":peer:" + w.Room + ":" + w.Payload.Peer
	c.mu.Lock()
	own := !c.resuming.IsZero() && w.Payload.Resumed
	c.resuming = time.Time{}
	c.session, c.room, c.peer = w.Payload.Session, w.Room, w.Payload.Peer
	c.welcomed = true
	if w.Seq > 0 {
		c.last = w.Seq
	}
	subscribe := c.peerChan != ch
	c.peerChan = ch
	c.mu.Unlock()
	if subscribe {
		_ = c.ps.Subscribe(context.Background(), ch)
	}
	return !own
}

// Send implements brokertest.Conn.
func (c *Conn) Send(ctx context.Context, data []byte) error {
	c.mu.Lock()
	session := c.session
	c.mu.Unlock()
	var err error
	if session == "" {
		data, err = c.prepareJoin(ctx, data)
	} else {
		data = withSession(data, session)
	}
	if err != nil {
		return err
	}
	return Publish(ctx, c.client, c.prefix+":in", data)
}

// prepareJoin adds the reply channel to a join and subscribes to the peer
// channel when the join names the peer.
func (c *Conn) prepareJoin(ctx context.Context, data []byte) ([]byte, error) {
	var env map[string]json.RawMessage
	if json.Unmarshal(data, &env) != nil || string(env["type"]) != `"join"` {
		return nil, ErrNotJoin
	}
	payload := map[string]json.RawMessage{}
	if p := bytes.TrimSpace(env["payload"]); len(p) > 0 && string(p) != "null" {
		if json.Unmarshal(p, &payload) != nil {
			return nil, ErrNotJoin
		}
	}
	reply, _ := json.Marshal(c.reply)
	payload["reply"] = reply
	env["payload"], _ = json.Marshal(payload)
	var room, peer string
	_ = json.Unmarshal(env["room"], &room)
	_ = json.Unmarshal(payload["peer"], &peer)
	var resume struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if json.Unmarshal(payload["resume"], &resume) == nil {
		c.mu.Lock()
		c.last = resume.LastSeq
		c.mu.Unlock()
	}
	if room != "" && peer != "" {
		ch := c.prefix + ":peer:" + room + ":" + peer
		c.mu.Lock()
		subscribe := c.peerChan != ch
		c.peerChan = ch
		c.mu.Unlock()
		if subscribe {
			if err := c.ps.Subscribe(ctx, ch); err != nil {
				return nil, err
			}
		}
	}
	return json.Marshal(env)
}

// withSession adds "session" to an envelope's JSON object. Input that is not
// a JSON object cannot carry a session; it is sent as an object with the
// session alone, which the broker refuses as bad-request, as it would refuse
// the input itself.
func withSession(data []byte, session string) []byte {
	field := `"session":` + fmt.Sprintf("%q", session)
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) < 2 || trimmed[0] != '{' {
		return []byte("{" + field + "}")
	}
	rest := bytes.TrimSpace(trimmed[1:])
	out := make([]byte, 0, len(trimmed)+len(field)+2)
	out = append(out, '{')
	out = append(out, field...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// Publish publishes data to channel until a subscriber hears it (PUBLISH
// answers more than 0), trying again with backoff while Redis fails or
// nobody listens, until ctx ends.
func Publish(ctx context.Context, client redis.UniversalClient, channel string, data []byte) error {
	delay := 5 * time.Millisecond
	for {
		n, err := client.Publish(ctx, channel, data).Result()
		if err == nil && n > 0 {
			return nil
		}
		if waitCtx(ctx, delay) {
			if err != nil {
				return fmt.Errorf("redistest: publishing: %w", err)
			}
			return ErrNoBroker
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// Recv implements brokertest.Conn.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			data := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return data, nil
		}
		dropped := c.dropped
		c.mu.Unlock()
		if dropped {
			return nil, errors.New("redistest: connection dropped")
		}
		select {
		case <-c.wake:
		case <-c.done:
			c.mu.Lock()
			c.dropped = true
			c.mu.Unlock()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Drop implements brokertest.Conn: the peer unsubscribes from everything and
// sends nothing more, as a crashed service would.
func (c *Conn) Drop() error {
	c.mu.Lock()
	if c.dropped {
		c.mu.Unlock()
		return nil
	}
	c.dropped = true
	c.mu.Unlock()
	err := c.ps.Close()
	<-c.done
	return err
}
