package httplimit

import (
	"context"
	"maps"
	"sync"
)

type recorderKey struct{}

// recorder sums what a handler records for its request.
type recorder struct {
	mu   sync.Mutex
	used map[string]int64
}

// Record adds usage to the request whose context ctx is: what the handler learnt it cost (e.g.
// the tokens of an upstream's usage field). The middleware settles the request's reservation
// with the sum after the handler returns, or reports it when the plan reserves nothing. Safe
// from several goroutines; a context the middleware did not make ignores it and returns false.
func Record(ctx context.Context, usage map[string]int64) bool {
	rec, ok := ctx.Value(recorderKey{}).(*recorder)
	if !ok {
		return false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.used == nil {
		rec.used = map[string]int64{}
	}
	for d, n := range usage {
		rec.used[d] += n
	}
	return true
}

// total is what was recorded, nil when nothing was.
func (r *recorder) total() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.used)
}
