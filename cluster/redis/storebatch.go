package redis

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Store batching. Every relayed message in a cluster is a push, and a
// script call costs Redis far more than the few commands a push runs in it,
// so the pushes (and acks, and marks of what was written) that wait at the
// same moment are combined: one script call stores all of a batch's
// messages for the sessions of one hash slot, reading and writing each
// session's counters once per call rather than once per message. A batch of
// several calls (several slots of a Redis Cluster, or more than
// maxOpsPerCall operations) is sent as one pipeline.

// maxOpsPerBatch is the most pushes and acks one batch carries; maxOpsPerCall
// the most one script call does (a call blocks Redis while it runs).
const (
	maxOpsPerBatch = 512
	maxOpsPerCall  = 128
)

// mailboxScript runs a batch of pushes, acks and marks of what was written.
//
// KEYS: for each session i, KEYS[2i-1] its hash and KEYS[2i] its stream.
// ARGV: four per operation: the session's index i, "p" (push), "a" (ack) or
// "w" (written), max (push) or seq (ack, written), the body (push; empty
// for the others).
//
// It answers one integer per operation: for a push seq*2 + slow, for an ack
// 1 (done) or 0 (seq was never sent), for written 1, and -1 for any of them
// when there is no such session. A push past max unwritten messages is slow
// (kept all the same); beyond max messages, those written are forgotten
// oldest first ("dropped" is the last of them), once per call rather than
// once per push.
//
// Each session's counters are read once and written once per call, and
// nothing else is touched per push but the stream: the stream holds exactly
// the seqs after max(acked, dropped) up to last, so its length needs no
// asking, and Save gave it its ttl when it made it (nodes touch both keys).
var mailboxScript = goredis.NewScript(`
local ss = {}
local out = {}
for j = 1, #ARGV, 4 do
  local i = tonumber(ARGV[j])
  local s = ss[i]
  if s == nil then
    local v = redis.call('HMGET', KEYS[2*i-1], 'last', 'written', 'acked', 'dropped')
    if v[1] then
      s = {last = tonumber(v[1]), written = tonumber(v[2] or '0'), acked = tonumber(v[3] or '0'), dropped = tonumber(v[4] or '0'), max = 0}
    else
      s = false
    end
    ss[i] = s
  end
  local op = ARGV[j + 1]
  if not s then
    out[#out + 1] = -1
  elseif op == 'p' then
    local seq = s.last + 1
    s.last, s.pushed = seq, true
    redis.call('XADD', KEYS[2*i], seq .. '-0', 'b', ARGV[j + 3])
    local max = tonumber(ARGV[j + 2])
    s.max = max
    local slow = 0
    if max > 0 and seq - s.written > max then slow = 1 end
    out[#out + 1] = seq * 2 + slow
  elseif op == 'w' then
    local seq = math.min(tonumber(ARGV[j + 2]), s.last)
    if seq > s.written then s.written, s.marked = seq, true end
    out[#out + 1] = 1
  else
    local seq = tonumber(ARGV[j + 2])
    if seq > s.last then
      out[#out + 1] = 0
    else
      if seq > s.acked then s.acked, s.marked = seq, true end
      if seq > s.written then s.written, s.marked = seq, true end
      redis.call('XTRIM', KEYS[2*i], 'MINID', (seq + 1) .. '-0')
      out[#out + 1] = 1
    end
  end
end
for i, s in pairs(ss) do
  if s and (s.pushed or s.marked) then
    local set = {'last', s.last}
    if s.marked then
      set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] = 'written', s.written, 'acked', s.acked
    end
    local floor = math.max(s.acked, s.dropped)
    if s.max > 0 and s.last - floor > s.max then
      local cut = math.min(s.written, s.last - s.max)
      if cut > floor then
        redis.call('XTRIM', KEYS[2*i], 'MINID', (cut + 1) .. '-0')
        set[#set + 1], set[#set + 2] = 'dropped', cut
      end
    end
    redis.call('HSET', KEYS[2*i-1], unpack(set))
  end
end
return out
`)

// mailboxOp is one operation of mailboxScript waiting for its batch.
type mailboxOp struct {
	id   string
	op   string // "p", "a" or "w"
	n    uint64 // push: max (0: none); ack, written: seq
	body []byte // push

	res  int64
	err  error
	done chan struct{}
}

// mailboxQueue combines the mailbox operations that wait at the same moment
// into as few script calls as the slots they touch allow (see batcher).
type mailboxQueue struct {
	s *Store
	b batcher[*mailboxOp]
}

func newMailboxQueue(s *Store) *mailboxQueue {
	q := &mailboxQueue{s: s}
	q.b = batcher[*mailboxOp]{max: maxOpsPerBatch, run: q.run}
	return q
}

// do runs ops, in order, within ctx; each gets the script's answer for it
// in res, or its error in err. It fails only when ctx ends first.
func (q *mailboxQueue) do(ctx context.Context, ops ...*mailboxOp) error {
	for _, op := range ops {
		op.done = make(chan struct{})
	}
	q.b.add(ops...)
	for _, op := range ops {
		select {
		case <-op.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// mailboxCall is one script call of a batch: its keys, arguments and
// operations, in order.
type mailboxCall struct {
	slot int
	keys []string
	args []any
	ops  []*mailboxOp
	idx  map[string]int // session → its index in keys
	cmd  *goredis.Cmd
}

func (c *mailboxCall) add(s *Store, op *mailboxOp) {
	i, ok := c.idx[op.id]
	if !ok {
		k := s.keys(op.id)
		c.keys = append(c.keys, k[0], k[1])
		i = len(c.keys) / 2
		c.idx[op.id] = i
	}
	var body []byte
	if op.op == "p" {
		body = op.body
	}
	c.args = append(c.args, i, op.op, op.n, body)
	c.ops = append(c.ops, op)
}

// run sends batch, grouped into script calls by hash slot (one group on a
// single Redis), as one pipeline, and hands each operation its answer. A
// call Redis answers NOSCRIPT (it restarted, or its scripts were flushed)
// did not run; it is run again on its own, which loads the script.
func (q *mailboxQueue) run(batch []*mailboxOp) {
	ctx, cancel := context.WithTimeout(context.Background(), pipeOp)
	defer cancel()
	var calls []*mailboxCall
	open := map[int]*mailboxCall{} // the call of each slot still taking operations
	for _, op := range batch {
		slot := 0
		if q.s.cluster {
			slot = keySlot(q.s.keys(op.id)[0])
		}
		c := open[slot]
		if c == nil || len(c.ops) == maxOpsPerCall {
			c = &mailboxCall{slot: slot, idx: map[string]int{}}
			open[slot] = c
			calls = append(calls, c)
		}
		c.add(q.s, op)
	}
	if len(calls) == 1 {
		c := calls[0]
		c.cmd = mailboxScript.Run(ctx, q.s.client, c.keys, c.args...)
	} else {
		pipe := q.s.client.Pipeline()
		for _, c := range calls {
			c.cmd = mailboxScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx) // each call's error is looked at below
		for _, c := range calls {
			if err := c.cmd.Err(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
				c.cmd = mailboxScript.Run(ctx, q.s.client, c.keys, c.args...)
			}
		}
	}
	for _, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err == nil && len(res) != len(c.ops) {
			err = fmt.Errorf("redis: the mailbox script answered %d results for %d operations", len(res), len(c.ops))
		}
		for i, op := range c.ops {
			if err != nil {
				op.err = err
			} else {
				op.res = res[i]
			}
			close(op.done)
		}
	}
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag (the text between its first "{" and the next "}", if not empty), or
// else of the whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
