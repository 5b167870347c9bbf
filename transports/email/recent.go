package email

import (
	"container/list"
	"sync"
	"time"
)

// recent remembers keys for a while, at most max of them (the oldest is
// forgotten first). It is safe for concurrent use.
type recent struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	order *list.List // of *recentEntry, oldest first
	byKey map[string]*list.Element
}

type recentEntry struct {
	key string
	at  time.Time
}

func newRecent(max int, ttl time.Duration) *recent {
	return &recent{max: max, ttl: ttl, order: list.New(), byKey: make(map[string]*list.Element)}
}

// checkAndAdd reports whether key was seen within the ttl; if not, it
// remembers it from now.
func (r *recent) checkAndAdd(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for e := r.order.Front(); e != nil && now.Sub(e.Value.(*recentEntry).at) >= r.ttl; e = r.order.Front() {
		delete(r.byKey, e.Value.(*recentEntry).key)
		r.order.Remove(e)
	}
	if _, ok := r.byKey[key]; ok {
		return true
	}
	for r.order.Len() >= r.max {
		e := r.order.Front()
		delete(r.byKey, e.Value.(*recentEntry).key)
		r.order.Remove(e)
	}
	r.byKey[key] = r.order.PushBack(&recentEntry{key: key, at: now})
	return false
}

// len is how many keys are remembered.
func (r *recent) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.order.Len()
}
