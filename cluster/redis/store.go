package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
	"github.com/switchboard-rtc/switchboard/internal/redisclient"
)

// Store is the broker.Store on Redis: each session is a hash (its record
// and its seq counters) and a stream (its mailbox, one entry per message,
// entry id "<seq>-0"), under keys that share the session's hash tag, so
// that each script touches one slot of a Redis Cluster:
//
//	P:sess:{<session>}  hash: rec, last, written, acked, dropped
//	P:mbox:{<session>}  stream: entry id "<seq>-0", field b = the message as given
//
// Seqs are given inside a script, so any node may deliver into any
// mailbox. Save makes both keys, with their ttl; both expire unless a node
// touches them. Pushes, acks and marks of what was written that wait at the
// same moment share one script call per hash slot (see mailboxScript).
// Store is safe for concurrent use.
type Store struct {
	client  goredis.UniversalClient
	prefix  string
	cluster bool          // a Redis Cluster: a script call's keys share a slot
	ops     *mailboxQueue // pushes, acks and marks from many connections share script calls
}

var _ broker.Store = (*Store)(nil)

// NewStore returns a Store on client with key prefix (empty: DefaultPrefix).
// The caller keeps ownership of client.
func NewStore(client goredis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	s := &Store{client: client, prefix: prefix, cluster: redisclient.IsCluster(client)}
	s.ops = newMailboxQueue(s)
	return s
}

func (s *Store) keys(id string) []string {
	return []string{s.prefix + ":sess:{" + id + "}", s.prefix + ":mbox:{" + id + "}"}
}

var (
	// saveScript: KEYS hash, stream; ARGV rec, last, ttl (ms). It makes
	// the stream, empty, if there is none, so that it has its ttl before
	// the first push (which sets none).
	saveScript = goredis.NewScript(`
redis.call('HSET', KEYS[1], 'rec', ARGV[1])
for _, f in ipairs({'last', 'written', 'acked', 'dropped'}) do
  redis.call('HSETNX', KEYS[1], f, ARGV[2])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '0', '0-1', 'b', '')
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

	// takeScript: KEYS hash, stream; ARGV after, count. Returns {seq,
	// body, seq, body, ...}, -1 when there is no such session, -2 when
	// after reaches back past what was forgotten.
	takeScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local after = tonumber(ARGV[1])
if after < tonumber(redis.call('HGET', KEYS[1], 'dropped') or '0') then return -2 end
local entries = redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', '+', 'COUNT', ARGV[2])
local out = {}
local last = after
for _, e in ipairs(entries) do
  last = tonumber(string.match(e[1], '^(%d+)'))
  out[#out + 1] = last
  out[#out + 1] = e[2][2]
end
if last > tonumber(redis.call('HGET', KEYS[1], 'written') or '0') then
  redis.call('HSET', KEYS[1], 'written', last)
end
return out
`)
)

// Save implements broker.Store.
func (s *Store) Save(ctx context.Context, rec broker.SessionRecord, ttl time.Duration) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return saveScript.Run(ctx, s.client, s.keys(rec.ID), data, rec.Last, ttl.Milliseconds()).Err()
}

// Load implements broker.Store.
func (s *Store) Load(ctx context.Context, id string) (broker.SessionRecord, error) {
	var rec broker.SessionRecord
	data, err := s.client.HGet(ctx, s.keys(id)[0], "rec").Bytes()
	if errors.Is(err, goredis.Nil) {
		return rec, broker.ErrNoSession
	}
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(data, &rec)
}

// Push implements broker.Store. The deliveries go to Redis together, with
// those of concurrent calls, in as few script calls as their hash slots
// allow; it counts no bytes (Delivery.MaxBytes is not kept).
func (s *Store) Push(ctx context.Context, ds []broker.Delivery) error {
	ops := make([]mailboxOp, len(ds))
	ptrs := make([]*mailboxOp, len(ds))
	for i, d := range ds {
		ops[i] = mailboxOp{id: d.Session, op: "p", body: d.Body}
		if d.Max > 0 {
			ops[i].n = uint64(d.Max)
		}
		ptrs[i] = &ops[i]
	}
	if err := s.ops.do(ctx, ptrs...); err != nil {
		err = fmt.Errorf("redis: push: %w", err)
		for i := range ds {
			ds[i].Seq, ds[i].Slow, ds[i].Err = 0, false, err
		}
		return err
	}
	for i := range ds {
		d, op := &ds[i], &ops[i]
		d.Seq, d.Slow, d.Err = 0, false, nil
		switch {
		case op.err != nil:
			d.Err = fmt.Errorf("redis: push: %w", op.err)
		case op.res == -1:
			d.Err = broker.ErrNoSession
		default:
			d.Seq, d.Slow = uint64(op.res/2), op.res%2 == 1
		}
	}
	return nil
}

// Take implements broker.Store.
func (s *Store) Take(ctx context.Context, id string, after uint64, n int, buf []broker.Stored) ([]broker.Stored, error) {
	res, err := takeScript.Run(ctx, s.client, s.keys(id), after, n).Result()
	if err != nil {
		return buf, fmt.Errorf("redis: take: %w", err)
	}
	if code, ok := res.(int64); ok {
		if code == -2 {
			return buf, broker.Errorf(broker.CodeSessionExpired, "messages after seq %d were forgotten", after)
		}
		return buf, broker.Errorf(broker.CodeSessionExpired, "the session has ended")
	}
	items, ok := res.([]any)
	if !ok || len(items)%2 != 0 {
		return buf, fmt.Errorf("redis: take answered %v", res)
	}
	for i := 0; i < len(items); i += 2 {
		seq, _ := items[i].(int64)
		body, _ := items[i+1].(string)
		buf = append(buf, broker.Stored{Seq: uint64(seq), Body: []byte(body)})
	}
	return buf, nil
}

// Written implements broker.Store.
func (s *Store) Written(ctx context.Context, id string, seq uint64) error {
	op := &mailboxOp{id: id, op: "w", n: seq}
	err := s.ops.do(ctx, op)
	if err == nil {
		err = op.err
	}
	if err != nil {
		return fmt.Errorf("redis: written: %w", err)
	}
	if op.res == -1 {
		return broker.ErrNoSession
	}
	return nil
}

// Ack implements broker.Store.
func (s *Store) Ack(ctx context.Context, id string, seq uint64) (bool, error) {
	op := &mailboxOp{id: id, op: "a", n: seq}
	err := s.ops.do(ctx, op)
	if err == nil {
		err = op.err
	}
	if err != nil {
		return false, fmt.Errorf("redis: ack: %w", err)
	}
	if op.res == -1 {
		return false, broker.ErrNoSession
	}
	return op.res == 1, nil
}

// Seqs implements broker.Store.
func (s *Store) Seqs(ctx context.Context, id string) (uint64, uint64, error) {
	vals, err := s.client.HMGet(ctx, s.keys(id)[0], "last", "dropped", "rec").Result()
	if err != nil {
		return 0, 0, err
	}
	if vals[2] == nil {
		return 0, 0, broker.ErrNoSession
	}
	return parseUint(vals[0]), parseUint(vals[1]), nil
}

func parseUint(v any) uint64 {
	s, _ := v.(string)
	var n uint64
	_, _ = fmt.Sscan(s, &n)
	return n
}

// Touch implements broker.Store.
func (s *Store) Touch(ctx context.Context, ids []string, ttl time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	for _, id := range ids {
		for _, k := range s.keys(id) {
			pipe.PExpire(ctx, k, ttl)
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Delete implements broker.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.client.Del(ctx, s.keys(id)...).Err()
}
