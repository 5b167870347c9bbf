package websocket

// registry holds connections by a small index, reused once freed: a
// pointer per connection, where a map of them costs several times that.
// It is not safe for concurrent use: its owner locks it.
type registry struct {
	items []*conn
	free  []int
}

// add stores c and returns its index.
func (r *registry) add(c *conn) int {
	if n := len(r.free); n > 0 {
		i := r.free[n-1]
		r.free = r.free[:n-1]
		r.items[i] = c
		return i
	}
	r.items = append(r.items, c)
	return len(r.items) - 1
}

// remove frees index i, if c holds it.
func (r *registry) remove(i int, c *conn) {
	if i >= 0 && i < len(r.items) && r.items[i] == c {
		r.items[i] = nil
		r.free = append(r.free, i)
	}
}

// get returns the connection at index i, or nil.
func (r *registry) get(i int) *conn {
	if i < 0 || i >= len(r.items) {
		return nil
	}
	return r.items[i]
}

// each calls f with every connection held.
func (r *registry) each(f func(c *conn)) {
	for _, c := range r.items {
		if c != nil {
			f(c)
		}
	}
}
