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
//	P:mbox:{<session>}  stream: field d = the frame, seq included
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
redis.call('XADD', KEYS[2], seq .. '-0', 'd', '{"seq":' .. seq .. ',' .. ARGV[1])
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

	// takeScript: KEYS hash, stream; ARGV after, count. Returns {last,
	// frames}, -1 when there is no such session, -2 when after reaches back
	// past what was forgotten.
	takeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local after = tonumber(ARGV[1])
if after < tonumber(redis.call('HGET', KEYS[1], 'dropped') or '0') then return -2 end
local entries = redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', '+', 'COUNT', ARGV[2])
local out = {}
local last = after
for _, e in ipairs(entries) do
  out[#out + 1] = e[2][2]
  last = tonumber(string.match(e[1], '^(%d+)'))
end
if last > tonumber(redis.call('HGET', KEYS[1], 'written') or '0') then
  redis.call('HSET', KEYS[1], 'written', last)
end
return {last, out}
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

// Push implements broker.Store.
func (s *Store) Push(ctx context.Context, id, _ string, body []byte, max int) (uint64, bool, error) {
	res, err := s.pushes.eval(ctx, pushScript, s.keys(id), body, max, storeKeyTTL.Milliseconds())
	if err != nil {
		return 0, false, fmt.Errorf("redistransport: push: %w", err)
	}
	if n, ok := res.(int64); ok && n == -1 {
		return 0, false, broker.ErrNoSession
	}
	pair, ok := res.([]any)
	if !ok || len(pair) != 2 {
		return 0, false, fmt.Errorf("redistransport: push answered %v", res)
	}
	seq, _ := pair[0].(int64)
	slow, _ := pair[1].(int64)
	return uint64(seq), slow == 1, nil
}

// Take implements broker.Store.
func (s *Store) Take(ctx context.Context, id string, after uint64, n int) ([][]byte, uint64, error) {
	res, err := takeScript.Run(ctx, s.client, s.keys(id), after, n).Result()
	if err != nil {
		return nil, after, fmt.Errorf("redistransport: take: %w", err)
	}
	if code, ok := res.(int64); ok {
		if code == -2 {
			return nil, after, broker.Errorf(broker.CodeSessionExpired, "messages after seq %d were forgotten", after)
		}
		return nil, after, broker.Errorf(broker.CodeSessionExpired, "the session has ended")
	}
	pair, ok := res.([]any)
	if !ok || len(pair) != 2 {
		return nil, after, fmt.Errorf("redistransport: take answered %v", res)
	}
	last, _ := pair[0].(int64)
	items, _ := pair[1].([]any)
	frames := make([][]byte, 0, len(items))
	for _, it := range items {
		if str, ok := it.(string); ok {
			frames = append(frames, []byte(str))
		}
	}
	return frames, uint64(last), nil
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
