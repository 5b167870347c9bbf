package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch is the most messages relay sends in one batch to a BatchSender.
const maxBatch = 32

// relay runs the relay workload: in every pair, a sends to b as fast as a
// window of o.Window messages in flight allows; b counts what arrives in the
// measurement window.
func (r *run) relay(ctx context.Context) (*Result, error) {
	pairs, err := r.dialPairs(ctx)
	if err != nil {
		return nil, err
	}
	w := r.newWindow()
	var msgs, bytes atomic.Int64
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var wg sync.WaitGroup
	for _, p := range pairs {
		credits := make(chan struct{}, r.o.Window)
		wg.Go(func() { r.relaySend(sendCtx, p, credits) })
		wg.Go(func() { r.drain(p.a) })
		wg.Go(func() {
			arrived := func() { // the sender may send another
				select {
				case <-credits:
				default:
				}
			}
			r.receiveNumbered(p.b, arrived, func(m Message, _ numbered) {
				if w.contains(time.Now()) {
					msgs.Add(1)
					bytes.Add(int64(len(m.Payload)))
				}
			})
		})
	}
	measured, _ := w.wait(ctx)
	stopSending()
	r.closePairs(pairs)
	wg.Wait()

	res := r.result(measured)
	res.Pairs, res.Size = len(pairs), r.o.Size
	res.RelayResult = &RelayResult{
		Window:         r.o.Window,
		Messages:       msgs.Load(),
		MessagesPerSec: float64(msgs.Load()) / measured.seconds(),
		BytesPerSec:    float64(bytes.Load()) / measured.seconds(),
	}
	return res, nil
}

// relaySend sends p.a's messages to p.b while it holds credits, which the
// receiver returns.
func (r *run) relaySend(ctx context.Context, p *pair, credits chan struct{}) {
	bs, batching := p.a.(BatchSender)
	batch := make([]Message, 0, maxBatch)
	var bufs [maxBatch][]byte // payload buffers, reused: Send does not retain them
	var n int64
	for {
		select {
		case credits <- struct{}{}:
		case <-ctx.Done():
			return
		}
		k := 1
		if batching {
		more:
			for k < maxBatch {
				select {
				case credits <- struct{}{}:
					k++
				default:
					break more
				}
			}
		}
		batch = batch[:0]
		for j := range k {
			bufs[j] = appendNumbered(bufs[j][:0], n, 0, r.o.Size)
			batch = append(batch, Message{Type: TypeMessage, To: p.bID, Payload: bufs[j]})
			n++
		}
		var err error
		if batching && k > 1 {
			err = bs.SendBatch(batch)
		} else {
			err = p.a.Send(batch[0])
		}
		if err != nil {
			r.failErr("send", err)
			return
		}
	}
}

// receiveNumbered receives c's numbered messages until c ends, checking
// that they come in order, and calls got with each. Errors the server
// reports and payloads that are not numbered are counted, not passed on;
// arrived, if not nil, is called for every message from the peer, numbered
// or not.
func (r *run) receiveNumbered(c Conn, arrived func(), got func(m Message, n numbered)) {
	var want int64
	for {
		m, err := c.Recv()
		if err != nil {
			r.failErr("recv", err)
			return
		}
		if m.Type == TypeError {
			r.serverError(m)
			continue
		}
		if arrived != nil {
			arrived()
		}
		n, err := parseNumbered(m.Payload)
		if err != nil {
			r.fail("payload")
			continue
		}
		if n.N != want {
			r.fail("order")
		}
		want = n.N + 1
		got(m, n)
	}
}
