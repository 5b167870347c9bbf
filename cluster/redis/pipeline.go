package redis

import (
	"context"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/broker"
)

// maxPipeline is the most commands one pipeline carries.
const maxPipeline = 128

// pipeOp bounds one pipeline.
const pipeOp = 5 * time.Second

// batcher hands the requests that wait at the same moment to run as one
// batch, one batch at a time: with many connections calling Redis at once,
// one round trip serves them all instead of one each, and while a batch is
// out the next one gathers. A request waits for no timer: the first of
// several becomes the sender and runs whatever has queued, again and again,
// handing the job to a goroutine of its own once its own requests' answers
// are in. Requests queued together stay in order.
type batcher[T any] struct {
	max int             // the most requests in one batch
	run func(batch []T) // answers every request of batch

	mu      sync.Mutex
	queue   []T
	sending bool
}

// add queues rs, in order, and runs batches until theirs are done if no
// batch is out.
func (b *batcher[T]) add(rs ...T) {
	b.mu.Lock()
	b.queue = append(b.queue, rs...)
	lead := !b.sending
	b.sending = true
	b.mu.Unlock()
	if lead {
		b.send(true, len(rs))
	}
}

// addAsync queues r without waiting for it: a goroutine runs the batch if
// none is out. It reports false, queuing nothing, when more than limit
// requests wait already.
func (b *batcher[T]) addAsync(r T, limit int) bool {
	b.mu.Lock()
	if len(b.queue) >= limit {
		b.mu.Unlock()
		return false
	}
	b.queue = append(b.queue, r)
	start := !b.sending
	b.sending = true
	b.mu.Unlock()
	if start {
		go b.send(false, 0)
	}
	return true
}

// send runs batches until the queue is empty. A caller (lead) whose own
// requests are the first own of the queue leaves what follows them to a
// goroutine of its own once they have run.
func (b *batcher[T]) send(lead bool, own int) {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.sending = false
			b.mu.Unlock()
			return
		}
		if lead && own <= 0 {
			b.mu.Unlock()
			go b.send(false, 0)
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil
		}
		b.mu.Unlock()
		b.run(batch)
		own -= n
	}
}

// pipeReq is one command waiting for its pipeline: a script (script set) or
// a PUBLISH of msg to channel.
type pipeReq struct {
	script  *goredis.Script
	keys    []string
	args    []any
	channel string
	msg     []byte
	wake    *broker.Event // a wake to publish on channel, with the others of its batch (wire.go)
	with    []*pipeReq    // the wakes a joined publish carries

	res  any
	err  error
	done chan struct{} // nil for a request nobody waits for
}

// pipeQueue sends the commands that wait at the same moment to Redis as one
// pipeline (see batcher).
type pipeQueue struct {
	client goredis.UniversalClient
	b      batcher[*pipeReq]
	// failed, if set, is told of the error of a request nobody waits for.
	failed func(channel string, err error)
}

// maxAsync is the most publishes that wait in a pipeQueue without their
// publisher waiting for them; past it, publishers wait again. It is small
// (four pipelines' worth): while Redis cannot be reached each pipeline may
// take pipeOp to fail, and the events whose publishers wait (joins, leaves,
// moves) queue behind the wakes.
const maxAsync = 4 * maxPipeline

func newPipeQueue(client goredis.UniversalClient) *pipeQueue {
	q := &pipeQueue{client: client}
	q.b = batcher[*pipeReq]{max: maxPipeline, run: q.run}
	return q
}

// eval runs script for keys and args within ctx.
func (q *pipeQueue) eval(ctx context.Context, script *goredis.Script, keys []string, args ...any) (any, error) {
	return q.do(ctx, &pipeReq{script: script, keys: keys, args: args})
}

// publish publishes msg on channel within ctx.
func (q *pipeQueue) publish(ctx context.Context, channel string, msg []byte) error {
	_, err := q.do(ctx, &pipeReq{channel: channel, msg: msg})
	return err
}

// publishWake publishes wake ev on channel, in one message with the other
// wakes of its batch for channel, without waiting for it, unless maxAsync
// publishes wait already: then it waits, within ctx. An error of a publish
// not waited for goes to q.failed.
func (q *pipeQueue) publishWake(ctx context.Context, channel string, ev broker.Event) error {
	r := &pipeReq{channel: channel, wake: &ev}
	if q.b.addAsync(r, maxAsync) {
		return nil
	}
	_, err := q.do(ctx, r)
	return err
}

func (q *pipeQueue) do(ctx context.Context, r *pipeReq) (any, error) {
	r.done = make(chan struct{})
	q.b.add(r)
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batch, as one pipeline when it holds more than one command,
// and hands each its answer. A script Redis does not have (it restarted, or
// its scripts were flushed) is run again on its own, which loads it.
func (q *pipeQueue) run(batch []*pipeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), pipeOp)
	defer cancel()
	batch, joined := joinWakes(batch)
	defer func() {
		for _, j := range joined {
			waited := true
			for _, r := range j.with {
				r.res, r.err = j.res, j.err
				if r.done != nil {
					close(r.done)
				} else {
					waited = false
				}
			}
			if j.err != nil && !waited && q.failed != nil {
				q.failed(j.channel, j.err) // once for the wakes it carried
			}
		}
	}()
	if len(batch) == 1 {
		r := batch[0]
		if r.script != nil {
			r.res, r.err = r.script.Run(ctx, q.client, r.keys, r.args...).Result()
		} else {
			r.err = q.client.Publish(ctx, r.channel, r.msg).Err()
		}
		q.answer(r)
		return
	}
	pipe := q.client.Pipeline()
	cmds := make([]goredis.Cmder, len(batch))
	for i, r := range batch {
		if r.script != nil {
			cmds[i] = r.script.EvalSha(ctx, pipe, r.keys, r.args...)
		} else {
			cmds[i] = pipe.Publish(ctx, r.channel, r.msg)
		}
	}
	_, _ = pipe.Exec(ctx) // each command's error is looked at below
	for i, r := range batch {
		switch c := cmds[i].(type) {
		case *goredis.Cmd:
			r.res, r.err = c.Result()
			if r.err != nil && goredis.HasErrorPrefix(r.err, "NOSCRIPT") {
				r.res, r.err = r.script.Run(ctx, q.client, r.keys, r.args...).Result()
			}
		default:
			r.err = c.Err()
		}
		q.answer(r)
	}
}

// joinWakes replaces the wakes of batch by one publish per channel, at the
// place of the channel's first, and returns those publishes too.
func joinWakes(batch []*pipeReq) ([]*pipeReq, []*pipeReq) {
	var joined []*pipeReq
	var byChannel map[string]*pipeReq
	out := batch[:0:0]
	for _, r := range batch {
		if r.wake == nil {
			out = append(out, r)
			continue
		}
		if byChannel == nil {
			byChannel = make(map[string]*pipeReq)
		}
		j := byChannel[r.channel]
		if j == nil {
			j = &pipeReq{channel: r.channel, done: make(chan struct{})}
			byChannel[r.channel] = j
			joined = append(joined, j)
			out = append(out, j)
		}
		j.msg = appendWake(j.msg, *r.wake)
		j.with = append(j.with, r)
	}
	if joined == nil {
		return batch, nil
	}
	return out, joined
}

// answer hands r its answer: to whoever waits, or else to q.failed.
func (q *pipeQueue) answer(r *pipeReq) {
	if r.done != nil {
		close(r.done)
	} else if r.err != nil && q.failed != nil {
		q.failed(r.channel, r.err)
	}
}
