package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// setupTimeout bounds one call setup; a pair whose setup takes longer is
// counted as failed and stops.
const setupTimeout = 10 * time.Second

// setupMessages is how many messages each side of a setup receives: the
// offer or answer and the candidates.
const setupMessages = 1 + candidatesPerSide

// setup runs the setup workload: in every pair, over and over, a sends an
// offer and trickles its candidates; b answers on the offer and trickles its
// own. A setup is complete when each side has everything from the other;
// only setups completed in the measurement window count.
func (r *run) setup(ctx context.Context) (*Result, error) {
	pairs, err := r.dialPairs(ctx)
	if err != nil {
		return nil, err
	}
	w := r.newWindow()
	var hist histogram
	var setups atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, p := range pairs {
		aDone := make(chan struct{}, 1)
		bDone := make(chan struct{}, 1)
		wg.Go(func() { r.setupSide(p.a, p.bID, TypeAnswer, nil, aDone) })
		wg.Go(func() { r.setupSide(p.b, p.aID, TypeOffer, answerPayload, bDone) })
		wg.Go(func() {
			timer := time.NewTimer(setupTimeout)
			defer timer.Stop()
			for runCtx.Err() == nil {
				start := time.Now()
				if err := sendSetup(p.a, p.bID, TypeOffer, offerPayload); err != nil {
					r.failErr("send", err)
					return
				}
				timer.Reset(setupTimeout)
				for _, done := range []chan struct{}{aDone, bDone} {
					select {
					case <-done:
					case <-timer.C:
						r.fail("setup-timeout")
						return
					case <-runCtx.Done():
						return
					}
				}
				if end := time.Now(); w.contains(end) {
					setups.Add(1)
					hist.record(end.Sub(start))
				}
			}
		})
	}
	measured, _ := w.wait(ctx)
	stop()
	r.closePairs(pairs)
	wg.Wait()

	res := r.result(measured)
	res.Pairs = len(pairs)
	res.SetupResult = &SetupResult{
		Setups:       setups.Load(),
		SetupsPerSec: float64(setups.Load()) / measured.seconds(),
		SetupTime:    hist.stats(),
	}
	return res, nil
}

// sendSetup sends one side's description and candidates to peer.
func sendSetup(c Conn, peer, typ string, sdp []byte) error {
	if err := c.Send(Message{Type: typ, To: peer, Payload: sdp}); err != nil {
		return err
	}
	for _, cand := range candidates {
		if err := c.Send(Message{Type: TypeCandidate, To: peer, Payload: cand}); err != nil {
			return err
		}
	}
	return nil
}

// setupSide receives one side's part of each setup from peer. The
// description is expected first, of type want; with reply set, the side
// answers it at once with reply and its candidates. After the last
// candidate it signals done.
func (r *run) setupSide(c Conn, peer, want string, reply []byte, done chan<- struct{}) {
	got := 0
	for {
		m, err := c.Recv()
		if err != nil {
			r.failErr("recv", err)
			return
		}
		switch {
		case m.Type == TypeError:
			r.serverError(m)
			continue
		case got == 0 && m.Type != want, got > 0 && m.Type != TypeCandidate:
			r.fail("order")
		}
		if got == 0 && reply != nil {
			if err := sendSetup(c, peer, TypeAnswer, reply); err != nil {
				r.failErr("send", err)
				return
			}
		}
		if got++; got == setupMessages {
			got = 0
			select {
			case done <- struct{}{}:
			default: // the driver has stopped waiting
			}
		}
	}
}
