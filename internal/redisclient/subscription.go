package redisclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Timings of a subscription.
const (
	// healthInterval is how long a subscription may hear nothing before it
	// pings Redis; a ping unanswered for as long again means the connection
	// is dead, and it is replaced.
	healthInterval = 3 * time.Second
	// resubscribeMin and resubscribeMax bound the backoff between attempts
	// to subscribe again after the connection failed.
	resubscribeMin = 50 * time.Millisecond
	resubscribeMax = time.Second
	// outageSummary is how often an outage is logged again while it lasts:
	// its first failure and its end are logged as they happen.
	outageSummary = 30 * time.Second
)

// errNotSubscribed is what Err reports before the first subscription is confirmed.
var errNotSubscribed = errors.New("redis: not subscribed yet")

// Subscription keeps one connection subscribed to a fixed set of channels,
// whatever happens to Redis: it reads messages and hands them to handle, in
// order, from its one goroutine; when the connection fails (an error, or no
// answer to a ping) it drops it and subscribes again on a new one, with
// backoff. go-redis's PubSub also reconnects by itself, but only when a read
// fails, and it cannot tell its caller; owning the loop lets Err report an
// outage while it lasts and OnSubscribed run after every (re)subscription.
type Subscription struct {
	client       goredis.UniversalClient
	channels     []string
	handle       func(*goredis.Message)
	OnSubscribed func(again bool) // after every confirmed subscription; again: not the first
	log          *slog.Logger

	firstOnce sync.Once
	first     chan struct{} // closed at the first confirmed subscription

	mu       sync.Mutex
	ps       *goredis.PubSub
	err      error // nil while subscribed
	since    time.Time
	attempts int // failed attempts in the current outage
	stopped  bool
	stop     chan struct{}
	done     chan struct{}
}

func NewSubscription(client goredis.UniversalClient, channels []string, log *slog.Logger, handle func(*goredis.Message)) *Subscription {
	return &Subscription{
		client:   client,
		channels: channels,
		handle:   handle,
		log:      log,
		err:      errNotSubscribed,
		since:    time.Now(),
		first:    make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// WaitSubscribed waits until the subscription is first confirmed, or for
// timeout, and reports whether it is.
func (s *Subscription) WaitSubscribed(timeout time.Duration) bool {
	select {
	case <-s.first:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Start runs the subscription in its own goroutine until Close.
func (s *Subscription) Start() { go s.run() }

// Err is nil while the subscription is confirmed, else why it is not.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return fmt.Errorf("redis subscription to %v down for %v: %w", s.channels, time.Since(s.since).Round(time.Millisecond), s.err)
}

// sinceTime is when the subscription last came up or went down.
func (s *Subscription) sinceTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since
}

// FailedAttempts is how many attempts to subscribe have failed in the
// current outage (0 while subscribed).
func (s *Subscription) FailedAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

func (s *Subscription) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.err == nil) != (err == nil) {
		s.since = time.Now()
	}
	s.err = err
}

// Close unsubscribes and waits for the goroutine to end; handle is not called
// after it returns. Closing twice is harmless.
func (s *Subscription) Close() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
		if s.ps != nil {
			_ = s.ps.Close() // unblocks the read
		}
	}
	s.mu.Unlock()
	<-s.done
}

func (s *Subscription) run() {
	defer close(s.done)
	backoff := resubscribeMin
	subscribed := false
	var summarized time.Time // when the current outage was last logged
	for {
		ctx := context.Background()
		ps := s.client.Subscribe(ctx, s.channels...)
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			_ = ps.Close()
			return
		}
		s.ps = ps
		s.mu.Unlock()
		err := s.read(ps, func() {
			backoff = resubscribeMin
			again := subscribed
			subscribed = true
			s.mu.Lock()
			attempts, down := s.attempts, time.Since(s.since).Round(time.Millisecond)
			s.attempts = 0
			s.mu.Unlock()
			s.setErr(nil)
			if attempts > 0 {
				s.log.Info("redis reachable again; subscribed", "channels", s.channels, "down_for", down, "failed_attempts", attempts)
			} else if again {
				s.log.Info("redis subscription restored", "channels", s.channels)
			}
			if s.OnSubscribed != nil {
				s.OnSubscribed(again)
			}
			s.firstOnce.Do(func() { close(s.first) })
		})
		_ = ps.Close()
		s.mu.Lock()
		s.ps = nil
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		s.mu.Lock()
		wasUp := s.err == nil
		s.attempts++
		attempts := s.attempts
		s.mu.Unlock()
		s.setErr(err)
		switch {
		case wasUp:
			// A live subscription broke: said at once, and again when it
			// is back (its first attempt may well succeed).
			s.log.Warn("redis subscription lost; subscribing again", "channels", s.channels, "error", err)
			summarized = time.Now()
		case attempts == 1:
			s.log.Warn("redis unreachable; subscribing again with backoff", "channels", s.channels, "error", err)
			summarized = time.Now()
		case time.Since(summarized) >= outageSummary:
			s.log.Warn("redis still unreachable", "channels", s.channels, "down_for", time.Since(s.sinceTime()).Round(time.Second),
				"failed_attempts", attempts, "error", err)
			summarized = time.Now()
		}
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, resubscribeMax)
	}
}

// read takes messages from ps until its connection fails; confirmed is called
// once every channel's subscription is confirmed.
func (s *Subscription) read(ps *goredis.PubSub, confirmed func()) error {
	pinged := false
	ctx := context.Background()
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					return errors.New("redis did not answer a ping")
				}
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Count == len(s.channels) {
				confirmed()
			}
		case *goredis.Message:
			s.handle(m)
		}
	}
}
