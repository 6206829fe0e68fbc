package httplimit

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spendcap/spendcap"
)

// The header fields of draft-ietf-httpapi-ratelimit-headers (revision 11, still a draft):
//
//	RateLimit-Policy: "tokens";q=100000;w=2592000, "acme/rpm";q=60;w=60
//	RateLimit: "tokens";r=98800;t=1234, "acme/rpm";r=58;t=60
//
// Both are Structured Field Lists of items named by a String: q is a policy's quota, w its window
// in seconds, qu its quota unit (for a concurrency cap, "concurrent-requests"), r what remains and
// t the seconds until it is whole again. A budget's policies are the dimensions of the call (their
// remaining is the least over the charged set, the outcome's remaining); q and w come from the
// named budget's hard limit and window, read once per DefinitionTTL. A quota policy gives its
// rate (q, w) and its concurrency cap; of a plan's quota policies, the one the acquisition answers
// about (the first, or the one that refused), whose counts come with the answer.

// policy is one item of both fields.
type policy struct {
	name      string
	quota     int64 // q; -1: unknown, the item is left out of RateLimit-Policy
	window    int64 // w in seconds; 0: none
	unit      string
	remaining int64 // r
	reset     int64 // t in seconds; -1: none
}

// headerSet collects the policies of a response.
type headerSet struct {
	policies []policy
}

func (h *headerSet) budget(def *budgetDef, o spendcap.Outcome, now time.Time) {
	dims := make([]string, 0, len(o.Remaining))
	for d := range o.Remaining {
		dims = append(dims, d)
	}
	sort.Strings(dims)
	for _, d := range dims {
		p := policy{name: d, quota: -1, remaining: o.Remaining[d], reset: -1}
		if def != nil {
			if q, ok := def.hard[d]; ok {
				p.quota = q
			}
			p.window = def.window
		}
		if o.NextResetAt != nil {
			p.reset = max(0, int64(o.NextResetAt.Sub(now).Seconds()+0.999))
		}
		h.policies = append(h.policies, p)
	}
}

func (h *headerSet) quota(def *spendcap.QuotaStatus, a spendcap.Acquired) {
	if def == nil {
		return
	}
	if def.Window > 0 {
		w := int64(def.Window / time.Second)
		h.policies = append(h.policies, policy{name: def.PolicyID, quota: int64(def.MaxRequests), window: w,
			remaining: max(0, int64(def.MaxRequests)-a.InWindow), reset: w})
	}
	if def.MaxConcurrent > 0 {
		name := def.PolicyID
		if def.Window > 0 {
			name += "/concurrency" // the rate item has the policy's name
		}
		h.policies = append(h.policies, policy{name: name, quota: int64(def.MaxConcurrent),
			unit: "concurrent-requests", remaining: max(0, int64(def.MaxConcurrent)-a.Active), reset: -1})
	}
}

// write sets the fields on w; legacy also the X-RateLimit triple of the policy with the least
// left among those whose quota is known.
func (h *headerSet) write(w http.ResponseWriter, legacy bool) {
	if len(h.policies) == 0 {
		return
	}
	var pol, lim []string
	var least *policy
	for i, p := range h.policies {
		if p.quota >= 0 {
			item := sfString(p.name) + ";q=" + strconv.FormatInt(p.quota, 10)
			if p.window > 0 {
				item += ";w=" + strconv.FormatInt(p.window, 10)
			}
			if p.unit != "" {
				item += ";qu=" + sfString(p.unit)
			}
			pol = append(pol, item)
			if least == nil || p.remaining < least.remaining {
				least = &h.policies[i]
			}
		}
		item := sfString(p.name) + ";r=" + strconv.FormatInt(p.remaining, 10)
		if p.reset >= 0 {
			item += ";t=" + strconv.FormatInt(p.reset, 10)
		}
		lim = append(lim, item)
	}
	if len(pol) > 0 {
		w.Header().Set("RateLimit-Policy", strings.Join(pol, ", "))
	}
	w.Header().Set("RateLimit", strings.Join(lim, ", "))
	if legacy && least != nil {
		w.Header().Set("X-RateLimit-Limit", strconv.FormatInt(least.quota, 10))
		w.Header().Set("X-RateLimit-Remaining", strconv.FormatInt(least.remaining, 10))
		if least.reset >= 0 {
			// A Unix time, as go-chi/httprate and ulule/limiter send it.
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Duration(least.reset)*time.Second).Unix(), 10))
		}
	}
}

// sfString is s as a Structured Field String: quoted, with " and \ escaped (ids and dimension
// names are printable ASCII).
func sfString(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	return `"` + sfEscaper.Replace(s) + `"`
}

var sfEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// problem answers status with an application/problem+json body (RFC 9457).
func problem(w http.ResponseWriter, status int, kind, title, detail string, more map[string]any) {
	body := map[string]any{"type": "https://spendcap.dev/problems/" + kind, "title": title, "status": status, "detail": detail}
	for k, v := range more {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// budgetDef is what RateLimit-Policy says of a budget: its hard limits and its window in seconds.
type budgetDef struct {
	hard   map[string]int64
	window int64
}

// definitions caches budget and policy definitions for the RateLimit-Policy field: the first
// request of a budget or policy reads its definition (one more call, once), later ones use the
// cache, and an entry older than the TTL is read again in the background (once at a time per id)
// while requests go on with the one they have. At most maxDefinitions entries of each kind are
// kept; past that the cache starts over.
type definitions struct {
	ttl     time.Duration
	mu      sync.Mutex
	b       map[string]cached[*budgetDef]
	q       map[string]cached[*spendcap.QuotaStatus]
	loading map[string]bool
}

const maxDefinitions = 100_000

type cached[T any] struct {
	at time.Time
	v  T
}

func (d *definitions) budget(ctx context.Context, b spendcap.Budgets, id string, now time.Time) *budgetDef {
	return lookup(d, &d.b, "b "+id, id, now, func(ctx context.Context) (*budgetDef, error) {
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		if err != nil {
			return nil, err
		}
		def := &budgetDef{hard: st.HardLimits}
		if st.NextResetAt != nil {
			def.window = int64(st.NextResetAt.Sub(st.WindowStart) / time.Second)
		}
		return def, nil
	}, ctx)
}

func (d *definitions) quota(ctx context.Context, q spendcap.Quotas, id string, now time.Time) *spendcap.QuotaStatus {
	return lookup(d, &d.q, "q "+id, id, now, func(ctx context.Context) (*spendcap.QuotaStatus, error) {
		st, err := q.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: id})
		st.Holders = nil
		return &st, err
	}, ctx)
}

// lookup is entry id of cache m: read now when there is none (nil when that fails), else the
// cached one, read again in the background when it is older than the TTL.
func lookup[T any](d *definitions, m *map[string]cached[*T], flight, id string, now time.Time,
	load func(context.Context) (*T, error), ctx context.Context) *T {
	store := func(v *T) {
		if *m == nil || len(*m) >= maxDefinitions {
			*m = map[string]cached[*T]{}
		}
		(*m)[id] = cached[*T]{at: now, v: v}
	}
	d.mu.Lock()
	c, ok := (*m)[id]
	if !ok {
		d.mu.Unlock()
		v, err := load(ctx)
		if err != nil {
			return nil
		}
		d.mu.Lock()
		store(v)
		d.mu.Unlock()
		return v
	}
	defer d.mu.Unlock()
	if now.Sub(c.at) < d.ttl || d.loading[flight] {
		return c.v
	}
	if d.loading == nil {
		d.loading = map[string]bool{}
	}
	d.loading[flight] = true
	go func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		v, err := load(lctx)
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.loading, flight)
		if err == nil {
			store(v)
		}
	}()
	return c.v
}
