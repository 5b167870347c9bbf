package redis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxPipeline is the most commands one pipeline carries.
const maxPipeline = 128

// pipeOp bounds one pipeline.
const pipeOp = 5 * time.Second

// pipeReq is one command waiting for its pipeline: a script (script set) or
// a PUBLISH of msg to channel.
type pipeReq struct {
	script  *redis.Script
	keys    []string
	args    []any
	channel string
	msg     []byte

	res  any
	err  error
	done chan struct{}
}

// pipeQueue sends the commands that wait at the same moment to Redis as one
// pipeline: with many connections storing messages at once, one round trip
// serves them all instead of one each. A command waits for no timer: the
// first of several becomes the sender and sends whatever has queued, again
// and again, handing the job to a goroutine of its own once its own
// command's answer is in.
type pipeQueue struct {
	client redis.UniversalClient

	mu      sync.Mutex
	queue   []*pipeReq
	sending bool
}

// eval runs script for keys and args within ctx.
func (q *pipeQueue) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	return q.do(ctx, &pipeReq{script: script, keys: keys, args: args})
}

// publish publishes msg on channel within ctx.
func (q *pipeQueue) publish(ctx context.Context, channel string, msg []byte) error {
	_, err := q.do(ctx, &pipeReq{channel: channel, msg: msg})
	return err
}

func (q *pipeQueue) do(ctx context.Context, r *pipeReq) (any, error) {
	if err := q.doAll(ctx, []*pipeReq{r}); err != nil {
		return nil, err
	}
	return r.res, r.err
}

// doAll queues rs together, in order, and waits for all their answers
// (each in its own res and err) within ctx.
func (q *pipeQueue) doAll(ctx context.Context, rs []*pipeReq) error {
	for _, r := range rs {
		r.done = make(chan struct{})
	}
	q.mu.Lock()
	q.queue = append(q.queue, rs...)
	lead := !q.sending
	q.sending = true
	q.mu.Unlock()
	if lead {
		q.send(true)
	}
	for _, r := range rs {
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// send sends pipelines until the queue is empty. A caller whose command is
// in the first (lead) leaves the rest to a goroutine of its own after it.
func (q *pipeQueue) send(lead bool) {
	for first := true; ; first = false {
		q.mu.Lock()
		n := min(len(q.queue), maxPipeline)
		if n == 0 {
			q.sending = false
			q.mu.Unlock()
			return
		}
		if lead && !first {
			q.mu.Unlock()
			go q.send(false)
			return
		}
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		if len(q.queue) == 0 {
			q.queue = nil
		}
		q.mu.Unlock()
		q.run(batch)
	}
}

// run sends batch, as one pipeline when it holds more than one command,
// and hands each its answer. A script Redis does not have (it restarted, or
// its scripts were flushed) is run again on its own, which loads it.
func (q *pipeQueue) run(batch []*pipeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), pipeOp)
	defer cancel()
	if len(batch) == 1 {
		r := batch[0]
		if r.script != nil {
			r.res, r.err = r.script.Run(ctx, q.client, r.keys, r.args...).Result()
		} else {
			r.err = q.client.Publish(ctx, r.channel, r.msg).Err()
		}
		close(r.done)
		return
	}
	pipe := q.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
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
		case *redis.Cmd:
			r.res, r.err = c.Result()
			if r.err != nil && redis.HasErrorPrefix(r.err, "NOSCRIPT") {
				r.res, r.err = r.script.Run(ctx, q.client, r.keys, r.args...).Result()
			}
		default:
			r.err = c.Err()
		}
		close(r.done)
	}
}
