package valkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
)

// A call that charges a set (docs/semantics.md#budget-sets) passes the base key of every budget
// of the set: the library finds the set (the ancestors of each named budget, what a reservation
// or an execution was recorded on) and refuses with SC002 "keys: missing the keys of budgets
// [...]" when a key is not among the call's, having written nothing. The client learns the set
// from that reply: it passes the budgets the caller named plus what it learned for them last
// time, and on that reply adds the budgets named and tries again. So a Go caller names only the
// budgets, a budget without a parent costs one round trip, and a chain costs a second one the
// first time this client charges it (or after it changed).

// setRetries bounds the tries of one call: every retry passes more keys, and each set is at most
// 64 budgets, but a chain may change between tries.
const setRetries = 4

// setCacheSize bounds how many named sets the client remembers; when full it starts afresh.
const setCacheSize = 1 << 16

// setCache remembers, per named set (budget_id and also_charge), the other budgets its calls
// needed keys for. Reads far outnumber writes (a write follows a chain's first call or change).
type setCache struct {
	mu sync.RWMutex
	m  map[string][]string
}

func (s *setCache) get(k string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[k]
}

func (s *setCache) put(k string, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= setCacheSize {
		s.m = make(map[string][]string)
	}
	s.m[k] = ids
}

// setCall runs FCALL sc_<name> for a call to budgetID that names also (already in a), passing the
// keys of the set as the library asks for them.
func (c *Client) setCall(ctx context.Context, name, budgetID string, also []string, a any, readonly bool, out any) error {
	payload, err := encodeArgs(a) // once for every try
	if err != nil {
		return err
	}
	named, cacheKey := []string{budgetID}, budgetID
	if len(also) > 0 {
		named = append(named, also...)
		cacheKey = strings.Join(named, " ") // ids have no space
	}
	learned := c.sets.get(cacheKey)
	for try := 1; ; try++ {
		err := c.callKeys(ctx, name, setKeys(named, learned), rawArgs(payload), readonly, out)
		if isCrossSlot(err) {
			return &spendcap.Error{Code: "SC002", Cause: err, Message: fmt.Sprintf(
				"budget_id: the set of %q spans cluster slots (%s): on a cluster, the budgets of a set must share the first '/' segment of their ids",
				budgetID, strings.Join(append(named, learned...), ", "))}
		}
		more, ok := missingKeys(err)
		if !ok || try == setRetries {
			return err
		}
		learned = union(learned, more)
		c.sets.put(cacheKey, learned)
	}
}

// setKeys are the keys of a call: the named budgets' first, then the others, each once.
func setKeys(named, learned []string) []string {
	if len(named) == 1 && len(learned) == 0 {
		return []string{Key(named[0])} // a budget alone, the common call
	}
	keys := make([]string, 0, len(named)+len(learned))
	seen := make(map[string]bool, cap(keys))
	for _, ids := range [][]string{named, learned} {
		for _, id := range ids {
			if k := Key(id); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// missingPrefix starts the message of the library's missing_keys error (valkey/lua/040_admission.lua).
const missingPrefix = "keys: missing the keys of budgets "

// missingKeys reads the budgets a missing_keys error names.
func missingKeys(err error) ([]string, bool) {
	var e *spendcap.Error
	if !errors.As(err, &e) || e.Code != "SC002" || !strings.HasPrefix(e.Message, missingPrefix) {
		return nil, false
	}
	list, _, _ := strings.Cut(strings.TrimPrefix(e.Message, missingPrefix), ": ")
	var ids []string
	if json.Unmarshal([]byte(list), &ids) != nil || len(ids) == 0 {
		return nil, false
	}
	return ids, true
}

// isCrossSlot says whether a cluster refused a call whose keys hash to different slots.
func isCrossSlot(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "CROSSSLOT")
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		found := false
		for _, y := range out {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}
