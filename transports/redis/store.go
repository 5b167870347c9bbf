package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
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
// mailbox. Both keys expire unless a node touches them. Store is safe for
// concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	pushes *pipeQueue // pushes from many connections at once share round trips
}

var _ broker.Store = (*Store)(nil)

// NewStore returns a Store on client with key prefix (empty: DefaultPrefix).
// The caller keeps ownership of client.
func NewStore(client redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: prefix, pushes: &pipeQueue{client: client}}
}

func (s *Store) keys(id string) []string {
	return []string{s.prefix + ":sess:{" + id + "}", s.prefix + ":mbox:{" + id + "}"}
}

var (
	// pushScript: KEYS hash, stream; ARGV body, max, ttl (ms). Returns
	// {seq, slow}, or -1 when there is no such session.
	pushScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'b', ARGV[1])
local max = tonumber(ARGV[2])
local slow = 0
if max > 0 then
  local written = tonumber(redis.call('HGET', KEYS[1], 'written') or '0')
  local n = redis.call('XLEN', KEYS[2])
  while n > max do
    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    local fseq = tonumber(string.match(first[1][1], '^(%d+)'))
    if fseq > written then
      slow = 1
      break
    end
    redis.call('XDEL', KEYS[2], first[1][1])
    redis.call('HSET', KEYS[1], 'dropped', fseq)
    n = n - 1
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {seq, slow}
`)

	// takeScript: KEYS hash, stream; ARGV after, count. Returns {seq,
	// body, seq, body, ...}, -1 when there is no such session, -2 when
	// after reaches back past what was forgotten.
	takeScript = redis.NewScript(`
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

	// writtenScript: KEYS hash; ARGV seq. Returns 1, -1 when there is no
	// such session.
	writtenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = math.min(tonumber(ARGV[1]), tonumber(redis.call('HGET', KEYS[1], 'last') or '0'))
if seq > tonumber(redis.call('HGET', KEYS[1], 'written') or '0') then redis.call('HSET', KEYS[1], 'written', seq) end
return 1
`)

	// ackScript: KEYS hash, stream; ARGV seq. Returns 1, 0 when seq was
	// never sent, -1 when there is no such session.
	ackScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = tonumber(ARGV[1])
if seq > tonumber(redis.call('HGET', KEYS[1], 'last') or '0') then return 0 end
if seq > tonumber(redis.call('HGET', KEYS[1], 'acked') or '0') then redis.call('HSET', KEYS[1], 'acked', seq) end
if seq > tonumber(redis.call('HGET', KEYS[1], 'written') or '0') then redis.call('HSET', KEYS[1], 'written', seq) end
redis.call('XTRIM', KEYS[2], 'MINID', (seq + 1) .. '-0')
return 1
`)
)

// Save implements broker.Store.
func (s *Store) Save(ctx context.Context, rec broker.SessionRecord, ttl time.Duration) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	k := s.keys(rec.ID)
	pipe := s.client.TxPipeline()
	pipe.HSet(ctx, k[0], "rec", data)
	for _, f := range []string{"last", "written", "acked", "dropped"} {
		pipe.HSetNX(ctx, k[0], f, rec.Last)
	}
	pipe.PExpire(ctx, k[0], ttl)
	pipe.PExpire(ctx, k[1], ttl)
	_, err = pipe.Exec(ctx)
	return err
}

// Load implements broker.Store.
func (s *Store) Load(ctx context.Context, id string) (broker.SessionRecord, error) {
	var rec broker.SessionRecord
	data, err := s.client.HGet(ctx, s.keys(id)[0], "rec").Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, broker.ErrNoSession
	}
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(data, &rec)
}

// ttl is how long Push keeps a session's keys; a node's Touch renews them.
const storeKeyTTL = 10 * time.Minute

// Push implements broker.Store. The deliveries go to Redis together, with
// those of concurrent calls, as one pipeline; it counts no bytes
// (Delivery.MaxBytes is not kept).
func (s *Store) Push(ctx context.Context, ds []broker.Delivery) error {
	rs := make([]*pipeReq, len(ds))
	for i, d := range ds {
		rs[i] = &pipeReq{script: pushScript, keys: s.keys(d.Session), args: []any{d.Body, d.Max, storeKeyTTL.Milliseconds()}}
	}
	if err := s.pushes.doAll(ctx, rs); err != nil {
		err = fmt.Errorf("redistransport: push: %w", err)
		for i := range ds {
			ds[i].Seq, ds[i].Slow, ds[i].Err = 0, false, err
		}
		return err
	}
	for i, r := range rs {
		d := &ds[i]
		d.Seq, d.Slow, d.Err = 0, false, nil
		if r.err != nil {
			d.Err = fmt.Errorf("redistransport: push: %w", r.err)
			continue
		}
		if n, ok := r.res.(int64); ok && n == -1 {
			d.Err = broker.ErrNoSession
			continue
		}
		pair, ok := r.res.([]any)
		if !ok || len(pair) != 2 {
			d.Err = fmt.Errorf("redistransport: push answered %v", r.res)
			continue
		}
		seq, _ := pair[0].(int64)
		slow, _ := pair[1].(int64)
		d.Seq, d.Slow = uint64(seq), slow == 1
	}
	return nil
}

// Take implements broker.Store.
func (s *Store) Take(ctx context.Context, id string, after uint64, n int, buf []broker.Stored) ([]broker.Stored, error) {
	res, err := takeScript.Run(ctx, s.client, s.keys(id), after, n).Result()
	if err != nil {
		return buf, fmt.Errorf("redistransport: take: %w", err)
	}
	if code, ok := res.(int64); ok {
		if code == -2 {
			return buf, broker.Errorf(broker.CodeSessionExpired, "messages after seq %d were forgotten", after)
		}
		return buf, broker.Errorf(broker.CodeSessionExpired, "the session has ended")
	}
	items, ok := res.([]any)
	if !ok || len(items)%2 != 0 {
		return buf, fmt.Errorf("redistransport: take answered %v", res)
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
	n, err := writtenScript.Run(ctx, s.client, s.keys(id)[:1], seq).Int64()
	if err != nil {
		return fmt.Errorf("redistransport: written: %w", err)
	}
	if n == -1 {
		return broker.ErrNoSession
	}
	return nil
}

// Ack implements broker.Store.
func (s *Store) Ack(ctx context.Context, id string, seq uint64) (bool, error) {
	n, err := ackScript.Run(ctx, s.client, s.keys(id), seq).Int64()
	if err != nil {
		return false, fmt.Errorf("redistransport: ack: %w", err)
	}
	if n == -1 {
		return false, broker.ErrNoSession
	}
	return n == 1, nil
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
