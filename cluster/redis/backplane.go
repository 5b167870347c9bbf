package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/redisclient"
)

// DefaultNodeTTL is how long a node may go without refreshing its key
// before the others take it for dead and remove its members.
const DefaultNodeTTL = 15 * time.Second

// Timings of the backplane.
const (
	// aliveFor is how long a node found alive is taken as alive without asking again.
	aliveFor = time.Second
	// reapedTTL is how long a node's reaped members are remembered, so that
	// the node, back from a partition, can tell the others they are there.
	reapedTTL = time.Hour
	// opTimeout bounds the backplane's own background calls.
	opTimeout = 5 * time.Second
	// beatRetry is how soon a failed heartbeat is tried again.
	beatRetry = 200 * time.Millisecond
	// forgetNode is how long a dead node is remembered as one.
	forgetNode = 24 * time.Hour
	// confirmWait is how long a relay to one peer waits for its node to
	// confirm it; past it, the sender is refused.
	confirmWait = 3 * time.Second
	// membersFor is how long a room's members read from Redis are used
	// again without asking; news of a change to the room drops them sooner.
	membersFor = time.Second
)

// BackplaneOptions configures a Backplane. The zero value of every field
// means its default.
type BackplaneOptions struct {
	// ClientOptions names the Redis deployment. Default: DefaultURL.
	ClientOptions `yaml:",inline"`
	// Prefix starts every key and channel name. Default: DefaultPrefix.
	Prefix string `yaml:"prefix"`
	// NodeTTL is how long a node may be silent (its key not refreshed)
	// before the other nodes remove its members, telling their peers
	// peer-left with reason timeout. Each node refreshes its key every
	// third of it. Default: DefaultNodeTTL (15 s).
	NodeTTL time.Duration `yaml:"node_ttl"`
	// Client, if set, is used instead of a client made from ClientOptions;
	// the backplane does not close it.
	Client goredis.UniversalClient `yaml:"-"`
	// Logger receives the backplane's logs. Default: slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Backplane is the cluster backplane on Redis: it implements
// broker.Backplane, so that broker nodes sharing one Redis share rooms.
//
// Presence lives in one hash per room, Prefix:room:<room>, mapping each peer
// id to its JSON broker.Member; a claim is one Lua script, so a peer id is
// unique cluster-wide. Each node keeps a key Prefix:node:<id> alive with a
// TTL of NodeTTL, refreshing it every third of that, and records its beats
// in the hash Prefix:nodes. A node that beat once and whose key has expired
// is dead (one never seen is not: its members may come from elsewhere). A
// member of a dead node is left out by Members, and whichever node sees it
// first removes it (compare-and-delete, so only one does) and publishes
// EventLeft with reason timeout for it, which every node turns into
// peer-left for its peers. Besides that lazy check, every node sweeps each
// NodeTTL/3 for dead nodes and removes their members from every room they
// had them in (Prefix:node-rooms:<id>), so a crashed node's peers are seen
// to leave within about NodeTTL + NodeTTL/3 + 1 s.
//
// Events travel as JSON broker.Event on Prefix:events, which every node
// reads (skipping its own), except relays to one peer, which go to the
// channel of the node that holds it, Prefix:events:<node>, in one script
// that looks the peer up and publishes. Such a relay carries a "confirm"
// id, which the receiving node publishes back to Prefix:confirm:<sender>
// as soon as it reads it; a relay that no node heard (PUBLISH answered 0)
// or that is not confirmed within 3 s is refused to its sender instead of
// vanishing, even if Redis dies with it in flight. Other events (peers
// joining and leaving, messages to a whole room) are best effort: what a
// node misses while its subscription is down is lost to it.
//
// When Redis loses its data (a restart without persistence) or a node was
// cut off for longer than NodeTTL, the node finds its key gone at its next
// refresh and claims its members again; those that another node had removed
// meanwhile are announced again with EventJoined, since their peers were told
// they left.
//
// A Backplane serves any number of nodes (one broker each); it is safe for
// concurrent use. Close it after the brokers using it.
type Backplane struct {
	opts    BackplaneOptions
	client  goredis.UniversalClient
	events  *pipeQueue // event publishes from many connections share round trips
	own     bool
	cluster bool
	keys    keys
	log     *slog.Logger
	ttl     time.Duration

	mu      sync.Mutex
	subs    map[*redisclient.Subscription]func() // subscriptions and what cancels them
	nodes   map[string]int                       // nodes subscribed here, counted
	local   map[string]map[string]broker.Member  // room → peer → member claimed through this backplane
	pending []release                            // releases Redis refused, tried again each beat
	alive   map[string]time.Time                 // other nodes, when last found alive
	beatErr error                                // the last heartbeat's failure, nil if it worked
	beatAt  time.Time                            // the last successful heartbeat
	closed  bool
	started bool
	waiting map[string]chan struct{} // relays published, by id, whose confirmation is awaited

	// rooms holds the members of rooms lately read (see Members). Any
	// change to a room made here, and any event from another node that
	// tells of one, drops the room's entry; gen counts the drops, so that a
	// read that raced with one is not kept.
	roomsMu sync.Mutex
	rooms   map[string]roomMembers
	gen     uint64
	kick    chan struct{} // beat now
	stop    chan struct{}
	done    chan struct{}
}

// roomMembers is a room's members as read from Redis at a moment.
type roomMembers struct {
	members []broker.Member
	at      time.Time
}

// wireEvent is a broker.Event as the backplane publishes it: the event's own
// JSON, with a confirmation id when its publisher waits to hear that the
// receiving node has it.
type wireEvent struct {
	broker.Event
	Confirm string `json:"confirm,omitempty"` // publish this id to the publisher's confirm channel on receipt
}

// confirmation is a confirmation to publish: id, to the node that waits for it.
type confirmation struct{ node, id string }

type release struct {
	room string
	m    broker.Member
}

var _ broker.Backplane = (*Backplane)(nil)

// NewBackplane returns a backplane with opts. It makes its Redis client
// (unless opts.Client is set) but does not connect until a broker subscribes.
func NewBackplane(opts BackplaneOptions) (*Backplane, error) {
	if opts.NodeTTL <= 0 {
		opts.NodeTTL = DefaultNodeTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	redisclient.RouteLog(opts.Logger)
	bp := &Backplane{
		opts:    opts,
		keys:    newKeys(opts.Prefix),
		log:     opts.Logger.With("backplane", "redis"),
		ttl:     opts.NodeTTL,
		subs:    make(map[*redisclient.Subscription]func()),
		nodes:   make(map[string]int),
		local:   make(map[string]map[string]broker.Member),
		alive:   make(map[string]time.Time),
		waiting: make(map[string]chan struct{}),
		rooms:   make(map[string]roomMembers),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.Client != nil {
		bp.client = opts.Client
	} else {
		c, err := opts.ClientOptions.NewClient()
		if err != nil {
			return nil, err
		}
		bp.client, bp.own = c, true
	}
	bp.cluster = redisclient.IsCluster(bp.client)
	bp.events = newPipeQueue(bp.client)
	bp.events.failed = func(channel string, err error) {
		bp.log.Warn("publishing a wake failed; its node finds the message at its next wake or resync", "channel", channel, "error", err)
	}
	return bp, nil
}

// Lua scripts. Each touches one key (a room's hash), so they run on Redis
// Cluster too. Members are JSON objects; cjson reads their session and node.
var (
	// claimScript sets ARGV[2] as the member for peer ARGV[1] unless another
	// session (not ARGV[3]) holds it; it answers nil, or the holder's JSON.
	claimScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, m = pcall(cjson.decode, cur)
  if ok and type(m) == 'table' and m.session ~= ARGV[3] then return cur end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return false`)
	// releaseScript deletes peer ARGV[1] if session ARGV[2] holds it.
	releaseScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, m = pcall(cjson.decode, cur)
  if ok and type(m) == 'table' and m.session == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return 0`)
	// reapScript deletes peer ARGV[1] if its member is still exactly ARGV[2].
	reapScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0`)
	// reassertScript sets ARGV[2] for peer ARGV[1] again: 1 if it was gone,
	// 0 if session ARGV[3] still held it, -1 if another session holds it now.
	reassertScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, m = pcall(cjson.decode, cur)
  if ok and type(m) == 'table' and m.session ~= ARGV[3] then return -1 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`)
	// relayScript publishes ARGV[3] on the events channel (prefix ARGV[2])
	// of the node that holds peer ARGV[1]: it answers PUBLISH's count, or -1
	// when the peer is not in the room.
	relayScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
local ok, m = pcall(cjson.decode, cur)
if not ok or type(m) ~= 'table' or type(m.node) ~= 'string' then return -1 end
return redis.call('PUBLISH', ARGV[2] .. m.node, ARGV[3])`)
	// beatScript refreshes a node key and answers whether it still existed.
	beatScript = goredis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return existed`)
)

// Claim implements broker.Backplane. A holder whose node is dead does not
// keep the id: it is removed (and announced as left) and the claim made.
func (bp *Backplane) Claim(ctx context.Context, room string, m broker.Member) error {
	if err := bp.ensureBeat(ctx, m.Node); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	defer bp.changed(room)
	for attempt := 0; ; attempt++ {
		holder, err := claimScript.Run(ctx, bp.client, []string{bp.keys.room(room)}, m.Peer, data, m.Session).Text()
		if errors.Is(err, goredis.Nil) {
			break
		}
		if err != nil {
			return fmt.Errorf("redis: claiming %s/%s: %w", room, m.Peer, err)
		}
		var h broker.Member
		if json.Unmarshal([]byte(holder), &h) != nil || attempt > 0 || bp.isAlive(ctx, h.Node) {
			return broker.Errorf(broker.CodePeerIDTaken, "peer id %s is taken in room %s", m.Peer, room)
		}
		bp.reap(ctx, room, holder, h)
	}
	bp.mu.Lock()
	r := bp.local[room]
	if r == nil {
		r = make(map[string]broker.Member)
		bp.local[room] = r
	}
	r[m.Peer] = m
	bp.mu.Unlock()
	if err := bp.client.SAdd(ctx, bp.keys.nodeRooms(m.Node), room).Err(); err != nil {
		bp.log.Warn("recording a node's room", "room", room, "error", err)
	}
	return nil
}

// Release implements broker.Backplane. If Redis cannot be reached, the
// release is tried again at each heartbeat until it is done.
func (bp *Backplane) Release(ctx context.Context, room string, m broker.Member) error {
	bp.mu.Lock()
	lastOfNode := false
	if r := bp.local[room]; r != nil {
		if cur, ok := r[m.Peer]; ok && cur.Session == m.Session {
			delete(r, m.Peer)
			lastOfNode = true
			for _, o := range r {
				if o.Node == m.Node {
					lastOfNode = false
					break
				}
			}
			if len(r) == 0 {
				delete(bp.local, room)
			}
		}
	}
	bp.mu.Unlock()
	if err := bp.release(ctx, room, m, lastOfNode); err != nil {
		bp.log.Warn("releasing a peer id failed; trying again at the next heartbeat", "room", room, "peer", m.Peer, "error", err)
		bp.mu.Lock()
		bp.pending = append(bp.pending, release{room, m})
		bp.mu.Unlock()
	}
	return nil
}

func (bp *Backplane) release(ctx context.Context, room string, m broker.Member, lastOfNode bool) error {
	defer bp.changed(room)
	if err := releaseScript.Run(ctx, bp.client, []string{bp.keys.room(room)}, m.Peer, m.Session).Err(); err != nil {
		return err
	}
	if lastOfNode {
		_ = bp.client.SRem(ctx, bp.keys.nodeRooms(m.Node), room).Err()
	}
	return nil
}

// Members implements broker.Backplane. Members of dead nodes are left out
// and removed.
//
// A relay to a peer on another node looks the room up, so the members
// read are used again for up to membersFor (1 s), unless a change to the
// room was heard of first: one made through this backplane, or an event
// from another node (joined, left, moved) or a resubscription (which may
// have missed some). A node announces every change it makes to a room, and
// a node acts on news of a room only after its entry here is dropped, so
// what a peer was told of is never older than what Members gives.
func (bp *Backplane) Members(ctx context.Context, room string) ([]broker.Member, error) {
	bp.roomsMu.Lock()
	c, ok := bp.rooms[room]
	gen := bp.gen
	bp.roomsMu.Unlock()
	if ok && time.Since(c.at) < membersFor {
		return slices.Clone(c.members), nil
	}
	at := time.Now()
	out, err := bp.readMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	bp.roomsMu.Lock()
	if bp.gen == gen {
		bp.rooms[room] = roomMembers{members: out, at: at}
	}
	bp.roomsMu.Unlock()
	return slices.Clone(out), nil
}

// changed drops what is kept of room's members; an empty room drops all.
func (bp *Backplane) changed(room string) {
	bp.roomsMu.Lock()
	bp.gen++
	if room == "" {
		clear(bp.rooms)
	} else {
		delete(bp.rooms, room)
	}
	bp.roomsMu.Unlock()
}

// heard drops what is kept of the room of ev if ev tells of a change to it.
func (bp *Backplane) heard(ev broker.Event) {
	switch ev.Kind {
	case broker.EventRelay, broker.EventWake, broker.EventSlow:
	default:
		bp.changed(ev.Room)
	}
}

// readMembers reads room's members from Redis, leaving out (and removing)
// those of dead nodes.
func (bp *Backplane) readMembers(ctx context.Context, room string) ([]broker.Member, error) {
	all, err := bp.client.HGetAll(ctx, bp.keys.room(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: members of %s: %w", room, err)
	}
	out := make([]broker.Member, 0, len(all))
	for peer, raw := range all {
		var m broker.Member
		if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Peer != peer {
			bp.log.Warn("unreadable member in Redis; ignored", "room", room, "peer", peer)
			continue
		}
		if !bp.isAlive(ctx, m.Node) {
			bp.reap(ctx, room, raw, m)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// isAlive reports whether node is alive: one of ours, or its key exists.
// A node is dead only when it is known (it beat once: it is in
// Prefix:nodes) and its key has expired; a node never seen, and an error,
// count as alive, so a member is removed only when its node is known dead.
func (bp *Backplane) isAlive(ctx context.Context, node string) bool {
	bp.mu.Lock()
	_, ours := bp.nodes[node]
	at, seen := bp.alive[node]
	bp.mu.Unlock()
	if ours || (seen && time.Since(at) < aliveFor) {
		return true
	}
	pipe := bp.client.Pipeline()
	exists := pipe.Exists(ctx, bp.keys.node(node))
	known := pipe.HExists(ctx, bp.keys.nodes(), node)
	if _, err := pipe.Exec(ctx); err != nil {
		return true
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if exists.Val() == 0 && known.Val() {
		delete(bp.alive, node)
		return false
	}
	bp.alive[node] = time.Now()
	return true
}

// reap removes member m (whose JSON in Redis is raw) of a dead node from
// room, if it is still there, and tells every node that it left.
func (bp *Backplane) reap(ctx context.Context, room, raw string, m broker.Member) {
	n, err := reapScript.Run(ctx, bp.client, []string{bp.keys.room(room)}, m.Peer, raw).Int()
	if err != nil || n == 0 {
		return
	}
	bp.changed(room)
	bp.log.Info("removed a member of a dead node", "room", room, "peer", m.Peer, "node", m.Node)
	pipe := bp.client.Pipeline()
	pipe.SAdd(ctx, bp.keys.reaped(m.Node), room+"/"+m.Peer)
	pipe.PExpire(ctx, bp.keys.reaped(m.Node), reapedTTL)
	_, _ = pipe.Exec(ctx)
	// Published as from the dead node, so that every live node, this one
	// included, tells its peers.
	ev := broker.Event{Kind: broker.EventLeft, Node: m.Node, Room: room, Peer: m.Peer, Reason: broker.ReasonTimeout}
	if err := bp.Publish(ctx, ev); err != nil {
		bp.log.Warn("announcing a removed member", "room", room, "peer", m.Peer, "error", err)
	}
}

// Publish implements broker.Backplane. A relay to one peer goes to its
// node's channel, and Publish returns only once that node has confirmed it
// received it: PUBLISH counts a subscriber as soon as the message is queued
// for it, so without the confirmation a Redis crash at that moment would
// lose it unseen. Every other event goes to all nodes, best effort.
func (bp *Backplane) Publish(ctx context.Context, ev broker.Event) error {
	if ev.Kind == broker.EventWake {
		// Best effort like every event but a relay: the message is stored
		// already, and a node that misses its wake finds it at the next
		// one or when it resyncs. Its sender need not wait, and the wakes
		// of one moment travel together (wire.go).
		if err := bp.events.publishWake(ctx, bp.keys.events(), ev); err != nil {
			return fmt.Errorf("redis: publishing a wake: %w", err)
		}
		return nil
	}
	if ev.Kind != broker.EventRelay || ev.To == "" {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := bp.events.publish(ctx, bp.keys.events(), data); err != nil {
			return fmt.Errorf("redis: publishing a %s event: %w", ev.Kind, err)
		}
		return nil
	}
	w := wireEvent{Event: ev}
	var confirmed chan struct{}
	bp.mu.Lock()
	if bp.nodes[ev.Node] > 0 { // the confirmation comes back on its channel
		w.Confirm = randomHex(8)
		confirmed = make(chan struct{})
		bp.waiting[w.Confirm] = confirmed
	}
	bp.mu.Unlock()
	if confirmed != nil {
		defer func() {
			bp.mu.Lock()
			delete(bp.waiting, w.Confirm)
			bp.mu.Unlock()
		}()
	}
	data, err := json.Marshal(w)
	if err != nil {
		return err
	}
	n, err := relayScript.Run(ctx, bp.client, []string{bp.keys.room(ev.Room)}, ev.To, bp.keys.events()+":", data).Int64()
	switch {
	case err != nil:
		return fmt.Errorf("redis: relaying to %s/%s: %w", ev.Room, ev.To, err)
	case n < 0:
		return broker.Errorf(broker.CodePeerUnavailable, "peer %s is not in room %s", ev.To, ev.Room)
	case n == 0 && !bp.cluster:
		return broker.Errorf(broker.CodeInternal, "the node serving peer %s cannot be reached just now; send again", ev.To)
	case confirmed == nil:
		return nil
	}
	timer := time.NewTimer(confirmWait)
	defer timer.Stop()
	select {
	case <-confirmed:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	return broker.Errorf(broker.CodeInternal, "the node serving peer %s did not confirm the message; it may not have arrived: send again", ev.To)
}

// confirmed wakes the relay waiting for id, if any.
func (bp *Backplane) confirmed(id string) {
	bp.mu.Lock()
	c := bp.waiting[id]
	delete(bp.waiting, id)
	bp.mu.Unlock()
	if c != nil {
		close(c)
	}
}

// confirm publishes the confirmations a subscription queues, until it is closed.
func (bp *Backplane) confirm(queue <-chan confirmation, log *slog.Logger) {
	for c := range queue {
		ctx, cancel := context.WithTimeout(context.Background(), confirmWait)
		if err := bp.client.Publish(ctx, bp.keys.confirms(c.node), c.id).Err(); err != nil {
			log.Debug("confirming a relay failed; its sender will be refused", "node", c.node, "error", err)
		}
		cancel()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Subscribe implements broker.Backplane. It also makes node a live member of
// the cluster: its key is refreshed until cancel is called. It waits (up to
// a few seconds each, when Redis cannot be reached) for the subscription to
// be confirmed, so that no event published after it returns is missed, and
// for the first refresh, so that the node is alive before it claims anything.
func (bp *Backplane) Subscribe(node string, fn func(broker.Event)) (cancel func()) {
	all, own := bp.keys.events(), bp.keys.nodeEvents(node)
	log := bp.log.With("node", node)
	confirms := make(chan confirmation, 1024)
	sub := redisclient.NewSubscription(bp.client, []string{all, own}, log, func(msg *goredis.Message) {
		if len(msg.Payload) > 0 && msg.Payload[0] == wakeMark {
			err := readWakes(msg.Payload, func(ev broker.Event) {
				if msg.Channel != all || ev.Node != node {
					fn(ev)
				}
			})
			if err != nil {
				log.Warn("unreadable event on the backplane; ignored", "channel", msg.Channel, "error", err)
			}
			return
		}
		var w wireEvent
		if err := json.Unmarshal([]byte(msg.Payload), &w); err != nil {
			log.Warn("unreadable event on the backplane; ignored", "channel", msg.Channel, "error", err)
			return
		}
		bp.heard(w.Event)
		if msg.Channel == all && w.Node == node {
			return
		}
		if w.Confirm != "" {
			// On receipt, not after fn: fn may itself publish a relay and
			// wait, and two nodes must not wait for each other.
			select {
			case confirms <- confirmation{node: w.Node, id: w.Confirm}:
			default: // the publisher times out and refuses its sender
			}
		}
		fn(w.Event)
	})
	// Confirmations of this node's relays come on a subscription of their
	// own, so that a relay published from within fn (the broker flushing a
	// held message) can be confirmed while fn waits.
	confirmSub := redisclient.NewSubscription(bp.client, []string{bp.keys.confirms(node)}, log, func(msg *goredis.Message) {
		bp.confirmed(msg.Payload)
	})
	confirmed := make(chan struct{})
	go func() {
		defer close(confirmed)
		bp.confirm(confirms, log)
	}()
	sub.OnSubscribed = func(again bool) {
		if again {
			bp.changed("") // what was missed may have changed any room
			bp.beatSoon()  // Redis may have restarted: claim the members again
			// Events published while the subscription was down are lost.
			fn(broker.Event{Kind: broker.EventResync, Node: node})
		}
	}
	var once sync.Once
	cancel = func() {
		once.Do(func() {
			sub.Close()
			confirmSub.Close()
			close(confirms)
			<-confirmed
			bp.mu.Lock()
			delete(bp.subs, sub)
			delete(bp.subs, confirmSub)
			bp.nodes[node]--
			last := bp.nodes[node] == 0
			if last {
				delete(bp.nodes, node)
			}
			bp.mu.Unlock()
			if last {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				defer cancel()
				_ = bp.client.Del(ctx, bp.keys.node(node)).Err()
			}
		})
	}
	bp.mu.Lock()
	bp.subs[sub] = cancel
	bp.subs[confirmSub] = func() {} // cancelled with sub
	first := bp.nodes[node] == 0
	bp.nodes[node]++
	startLoop := !bp.started && !bp.closed
	bp.started = bp.started || startLoop
	bp.mu.Unlock()
	sub.Start()
	confirmSub.Start()
	if !sub.WaitSubscribed(opTimeout) || !confirmSub.WaitSubscribed(opTimeout) {
		log.Warn("backplane not subscribed yet; going on, events may be missed until it is", "error", sub.Err())
	}
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		bp.beatNode(ctx, node)
		bp.cleanStale(ctx, node)
		cancel()
	}
	if startLoop {
		go bp.loop()
	}
	return cancel
}

// Ready reports whether the backplane works: nil while every subscription
// is confirmed and the last heartbeat reached Redis.
func (bp *Backplane) Ready() error {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if bp.closed {
		return errors.New("redis: backplane closed")
	}
	if bp.beatErr != nil {
		return fmt.Errorf("redis: heartbeat failing: %w", bp.beatErr)
	}
	for sub := range bp.subs {
		if err := sub.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Close cancels every subscription still open, stops the heartbeat, and
// closes the Redis client if the backplane made it. Close it after the brokers
// using it; closing twice is harmless.
func (bp *Backplane) Close() error {
	bp.mu.Lock()
	if bp.closed {
		bp.mu.Unlock()
		return nil
	}
	bp.closed = true
	started := bp.started
	cancels := make([]func(), 0, len(bp.subs))
	for _, c := range bp.subs {
		cancels = append(cancels, c)
	}
	bp.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	close(bp.stop)
	if started {
		<-bp.done
	}
	if bp.own {
		return bp.client.Close()
	}
	return nil
}

func (bp *Backplane) beatSoon() {
	select {
	case bp.kick <- struct{}{}:
	default:
	}
}

// loop is the heartbeat: every NodeTTL/3 it refreshes the keys of the nodes
// subscribed here, claims their members again if their key was gone, tries
// failed releases again, and removes the members of dead nodes.
func (bp *Backplane) loop() {
	defer close(bp.done)
	interval := bp.ttl / 3
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-bp.stop:
			return
		case <-timer.C:
		case <-bp.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		ok := bp.beat(ctx)
		cancel()
		if ok {
			timer.Reset(interval)
		} else {
			// Redis may be back any moment: its members must be claimed
			// again soon after, so a failed beat is tried again sooner.
			timer.Reset(min(interval, beatRetry))
		}
	}
}

// beat does one heartbeat and reports whether Redis answered.
func (bp *Backplane) beat(ctx context.Context) bool {
	bp.mu.Lock()
	nodes := make([]string, 0, len(bp.nodes))
	for n := range bp.nodes {
		nodes = append(nodes, n)
	}
	pending := bp.pending
	bp.pending = nil
	bp.mu.Unlock()
	ok := true
	for _, n := range nodes {
		ok = bp.beatNode(ctx, n) && ok
	}
	var again []release
	for _, r := range pending {
		if err := bp.release(ctx, r.room, r.m, false); err != nil {
			again = append(again, r)
		}
	}
	if len(again) > 0 {
		bp.mu.Lock()
		bp.pending = append(again, bp.pending...)
		bp.mu.Unlock()
	}
	if ok {
		bp.sweep(ctx)
	}
	return ok
}

// beatNode refreshes node's key; if it was gone, it claims node's members
// again. It reports whether Redis answered.
func (bp *Backplane) beatNode(ctx context.Context, node string) bool {
	existed, err := beatScript.Run(ctx, bp.client, []string{bp.keys.node(node)}, strconv.FormatInt(time.Now().UnixMilli(), 10), bp.ttl.Milliseconds()).Int()
	if err == nil {
		err = bp.client.HSet(ctx, bp.keys.nodes(), node, time.Now().UnixMilli()).Err()
	}
	bp.mu.Lock()
	wasFailing := bp.beatErr != nil
	if err != nil {
		bp.beatErr = err
	} else {
		bp.beatErr = nil
		bp.beatAt = time.Now()
	}
	bp.mu.Unlock()
	if err != nil {
		if !wasFailing {
			bp.log.Warn("backplane heartbeat failing", "node", node, "error", err)
		}
		return false
	}
	if wasFailing {
		bp.log.Info("backplane heartbeat restored", "node", node)
	}
	if existed == 0 {
		bp.reassert(ctx, node)
	}
	return true
}

// ensureBeat refreshes node's key first if it is one of ours and the last
// refresh is older than a third of the TTL: a claim must not be made by a
// node that the others may take for dead.
func (bp *Backplane) ensureBeat(ctx context.Context, node string) error {
	bp.mu.Lock()
	_, ours := bp.nodes[node]
	stale := time.Since(bp.beatAt) > bp.ttl/3
	bp.mu.Unlock()
	if !ours || !stale {
		return nil
	}
	if !bp.beatNode(ctx, node) {
		bp.mu.Lock()
		err := bp.beatErr
		bp.mu.Unlock()
		return fmt.Errorf("redis: node %s cannot reach Redis: %w", node, err)
	}
	return nil
}

// reassert claims node's members again after its key was found gone. Those
// that another node removed meanwhile (and told the peers so) are announced
// again; those that Redis merely forgot are not, since nobody saw them go.
func (bp *Backplane) reassert(ctx context.Context, node string) {
	bp.mu.Lock()
	var mine []release
	for room, peers := range bp.local {
		for _, m := range peers {
			if m.Node == node {
				mine = append(mine, release{room, m})
			}
		}
	}
	bp.mu.Unlock()
	if len(mine) == 0 {
		return
	}
	bp.log.Info("node key was gone: claiming its members again", "node", node, "members", len(mine))
	for _, r := range mine {
		data, _ := json.Marshal(r.m)
		res, err := reassertScript.Run(ctx, bp.client, []string{bp.keys.room(r.room)}, r.m.Peer, data, r.m.Session).Int()
		bp.changed(r.room)
		if err != nil {
			bp.log.Warn("claiming a member again", "room", r.room, "peer", r.m.Peer, "error", err)
			bp.beatSoon()
			return
		}
		_ = bp.client.SAdd(ctx, bp.keys.nodeRooms(node), r.room).Err()
		switch res {
		case -1:
			bp.log.Error("a member's peer id was taken by another session while this node was cut off; both now answer to it",
				"room", r.room, "peer", r.m.Peer, "node", node)
		case 1:
			if n, _ := bp.client.SRem(ctx, bp.keys.reaped(node), r.room+"/"+r.m.Peer).Result(); n > 0 {
				ev := broker.Event{Kind: broker.EventJoined, Node: node, Room: r.room, Peer: r.m.Peer, Meta: r.m.Meta}
				if err := bp.Publish(ctx, ev); err != nil {
					bp.log.Warn("announcing a member again", "room", r.room, "peer", r.m.Peer, "error", err)
				}
			}
		}
	}
}

// cleanStale removes the members that an earlier run of node (same id,
// before a crash) left in Redis: a node that has just subscribed holds none.
func (bp *Backplane) cleanStale(ctx context.Context, node string) {
	bp.mu.Lock()
	if bp.nodes[node] != 1 {
		bp.mu.Unlock()
		return
	}
	bp.mu.Unlock()
	rooms, err := bp.client.SMembers(ctx, bp.keys.nodeRooms(node)).Result()
	if err != nil {
		return
	}
	for _, room := range rooms {
		bp.reapRoom(ctx, room, node, true)
	}
}

// reapRoom removes node's members from room; stale limits it to members
// this backplane does not hold (an earlier run's).
func (bp *Backplane) reapRoom(ctx context.Context, room, node string, stale bool) bool {
	all, err := bp.client.HGetAll(ctx, bp.keys.room(room)).Result()
	if err != nil {
		return false
	}
	for peer, raw := range all {
		var m broker.Member
		if json.Unmarshal([]byte(raw), &m) != nil || m.Node != node {
			continue
		}
		if stale {
			bp.mu.Lock()
			cur, held := bp.local[room][peer]
			bp.mu.Unlock()
			if held && cur.Session == m.Session {
				continue
			}
		}
		bp.reap(ctx, room, raw, m)
	}
	return true
}

// sweep finds dead nodes and removes their members from every room they had
// members in, so their peers are seen to leave even if nobody looks at those
// rooms. A dead node stays known (so its leftovers are still taken for
// dead) until it has not beaten for forgetNode.
func (bp *Backplane) sweep(ctx context.Context) {
	nodes, err := bp.client.HGetAll(ctx, bp.keys.nodes()).Result()
	if err != nil {
		return
	}
	for node, last := range nodes {
		if bp.isAlive(ctx, node) {
			continue
		}
		rooms, err := bp.client.SMembers(ctx, bp.keys.nodeRooms(node)).Result()
		if err != nil {
			continue
		}
		done := true
		for _, room := range rooms {
			done = bp.reapRoom(ctx, room, node, false) && done
		}
		if done && len(rooms) > 0 {
			_ = bp.client.Del(ctx, bp.keys.nodeRooms(node)).Err()
		}
		if ms, err := strconv.ParseInt(last, 10, 64); err == nil && time.Since(time.UnixMilli(ms)) > forgetNode {
			_ = bp.client.HDel(ctx, bp.keys.nodes(), node).Err()
		}
	}
}
