// Package httplimit is net/http middleware that enforces spendcap budgets and quota policies on
// every request: a key from the request (an API key header by default), a plan saying which
// budget and policies the key charges, quota leases held while the handler runs, budget usage
// reported before it or reserved before and settled after, 429 with Retry-After and an
// application/problem+json body at a limit, and the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers) on every answer, from the outcome's remaining: no
// second call to the backend. It works on either client (gobinding, valkey) and reports through
// a spendcap.Batcher when given one.
package httplimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendcap/spendcap"
)

// Reporter reports usage: a spendcap.Budgets client, or a *spendcap.Batcher in front of one.
type Reporter interface {
	ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error)
}

// Plan is what one request charges: its budget (with the budget's parents and AlsoCharge) and
// its quota policies. The zero Plan charges nothing.
type Plan struct {
	// Budget is the budget the request charges, its chain included; "" for none.
	Budget string
	// AlsoCharge names more budgets each charge counts on (tags, models).
	AlsoCharge []string
	// Report is usage reported before the handler runs, whatever it does (a request, a fixed
	// price). A refusal answers 429 and the handler does not run.
	Report map[string]int64
	// Reserve is an estimate held before the handler runs and settled after it with what the
	// handler recorded (Record), or with the estimate when it recorded nothing. A refusal answers
	// 429 and the handler does not run.
	Reserve map[string]int64
	// ReserveTTL is how long a reservation lives if the settle never comes (5 minutes by default).
	ReserveTTL time.Duration
	// Quotas are quota policies acquired before the handler runs (the first one, the others as
	// its AlsoPolicies) and released after it, also when it panics or the client goes away.
	Quotas []string
	// Renew, when set, renews the leases that often while the handler runs: for streams that
	// last longer than a lease.
	Renew time.Duration
}

// Options configure the middleware.
type Options struct {
	// Budgets charges the plans' budgets (required when a plan names one).
	Budgets spendcap.Budgets
	// Reporter, when set, makes the Report charges (e.g. a *spendcap.Batcher on Budgets).
	Reporter Reporter
	// Quotas acquires the plans' quota policies (required when a plan names some).
	Quotas spendcap.Quotas
	// Key is the request's key; "" answers 401. The X-API-Key header by default.
	Key func(r *http.Request) string
	// Plan says what a request with key charges (required). An error answers 403 with its text.
	Plan func(r *http.Request, key string) (Plan, error)
	// RequestID identifies a request and its retries: the dedup key of its reports and the id of
	// its reservation and leases derive from it, so a retried request is counted once. The
	// Idempotency-Key header by default, else a random id.
	RequestID func(r *http.Request) string
	// FailOpen lets a request through, uncharged, when the backend fails; by default it is
	// refused with 503. Either way the failure is logged and counted.
	FailOpen bool
	// LegacyHeaders also sends X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset for
	// the policy with the least left, as the common Go middlewares do.
	LegacyHeaders bool
	// Logger logs backend failures (slog.Default by default).
	Logger *slog.Logger
	// Registerer, when set, registers spendcap_httplimit_backend_errors_total{decision}.
	Registerer prometheus.Registerer
	// DefinitionTTL is how long the limits read for RateLimit-Policy are kept (1 minute by
	// default): a budget's or policy's first request reads them (one more call, once), later
	// requests use what was read, and an older entry is read again in the background.
	DefinitionTTL time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Limiter is the middleware; Handler wraps a handler with it.
type Limiter struct {
	opts    Options
	errors  *prometheus.CounterVec
	refused atomic.Int64
	allowed atomic.Int64
	defs    definitions
}

// New checks opts and returns the middleware.
func New(opts Options) (*Limiter, error) {
	if opts.Plan == nil {
		return nil, errors.New("httplimit: Options.Plan is required")
	}
	if opts.Budgets == nil && opts.Quotas == nil {
		return nil, errors.New("httplimit: Options.Budgets or Options.Quotas is required")
	}
	if opts.Key == nil {
		opts.Key = func(r *http.Request) string { return r.Header.Get("X-API-Key") }
	}
	if opts.RequestID == nil {
		opts.RequestID = func(r *http.Request) string { return r.Header.Get("Idempotency-Key") }
	}
	if opts.Reporter == nil && opts.Budgets != nil {
		opts.Reporter = opts.Budgets
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DefinitionTTL <= 0 {
		opts.DefinitionTTL = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Limiter{opts: opts, errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spendcap_httplimit_backend_errors_total",
		Help: "Requests whose budget or quota call failed, by what the middleware did: refused (fail closed) or allowed (fail open).",
	}, []string{"decision"})}
	l.defs.ttl = opts.DefinitionTTL
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(l.errors); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Handler wraps next: the func(http.Handler) http.Handler of the Go middlewares.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.serve(w, r, next)
	})
}

// BackendErrors is how many requests met a backend failure and were refused (fail closed) and
// allowed (fail open).
func (l *Limiter) BackendErrors() (refused, allowed int64) {
	return l.refused.Load(), l.allowed.Load()
}

func (l *Limiter) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	apiKey := l.opts.Key(r)
	if apiKey == "" {
		problem(w, http.StatusUnauthorized, "missing-key", "No API key", "The request carries no API key.", nil)
		return
	}
	plan, err := l.opts.Plan(r, apiKey)
	if err != nil {
		problem(w, http.StatusForbidden, "no-plan", "Not allowed", err.Error(), nil)
		return
	}
	// A request the client named can be retried: its reports and its reservation carry keys made
	// from the name, so that a retry replays them. Another gets a random id (its reservation and
	// leases need one) and no key, which keeps its report on the backends' fast paths.
	id := l.opts.RequestID(r)
	key := ""
	if id == "" {
		id = randomID()
	} else {
		key = "httplimit-" + id
	}
	// The calls after the handler must run even when the client went away.
	after := context.WithoutCancel(ctx)
	var hs headerSet

	// Quota leases first: a request refused by its rate or concurrency never charges a budget.
	held := false
	if len(plan.Quotas) > 0 {
		a, err := l.opts.Quotas.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: plan.Quotas[0], HolderID: id,
			AlsoPolicies: plan.Quotas[1:]})
		if err != nil {
			if l.failed(w, r, err, "acquire_quota") {
				next.ServeHTTP(w, r)
			}
			return
		}
		hs.quota(l.defs.quota(ctx, l.opts.Quotas, a.PolicyID, l.opts.Now()), a)
		if !a.Admitted {
			hs.write(w, l.opts.LegacyHeaders)
			retry := max(1, int((a.RetryAfter+time.Second-1)/time.Second))
			w.Header().Set("Retry-After", fmt.Sprint(retry))
			problem(w, http.StatusTooManyRequests, "quota", "Too many requests",
				fmt.Sprintf("Quota policy %s refused the request (%s).", a.PolicyID, a.Reason), map[string]any{"policy_id": a.PolicyID})
			return
		}
		held = true
		defer l.release(after, plan, id)
	}

	// Budgets: a fixed report, or a reservation to settle.
	reserved := false
	if plan.Budget != "" && (len(plan.Report) > 0 || len(plan.Reserve) > 0) {
		var o spendcap.Outcome
		var err error
		if len(plan.Reserve) > 0 {
			ttl := plan.ReserveTTL
			if ttl <= 0 {
				ttl = 5 * time.Minute
			}
			o, err = l.opts.Budgets.Reserve(ctx, spendcap.ReserveParams{BudgetID: plan.Budget, ReservationID: "httplimit-" + id,
				Amounts: plan.Reserve, TTL: ttl, IdempotencyKey: key, AlsoCharge: plan.AlsoCharge})
		} else {
			o, err = l.opts.Reporter.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: plan.Budget, Deltas: plan.Report,
				DedupKey: key, AlsoCharge: plan.AlsoCharge})
		}
		if err != nil {
			if l.failed(w, r, err, "budget") {
				next.ServeHTTP(w, r)
			}
			return
		}
		hs.budget(l.defs.budget(ctx, l.opts.Budgets, plan.Budget, l.opts.Now()), o, l.opts.Now())
		if !o.Applied {
			hs.write(w, l.opts.LegacyHeaders)
			if o.NextResetAt != nil {
				w.Header().Set("Retry-After", fmt.Sprint(max(1, int(time.Until(*o.NextResetAt).Seconds()+0.999))))
			}
			problem(w, http.StatusTooManyRequests, "budget", "Budget exhausted",
				fmt.Sprintf("Budget %s has no %s left for this request.", o.BreachBudgetID, o.Dimension),
				map[string]any{"budget_id": o.BreachBudgetID, "dimension": o.Dimension})
			return
		}
		// A retry of a request replays its reservation: the first attempt settles it.
		reserved = len(plan.Reserve) > 0 && !o.Replayed
	}
	hs.write(w, l.opts.LegacyHeaders)

	rec := &recorder{}
	ctx = context.WithValue(ctx, recorderKey{}, rec)
	stop := func() {}
	if held && plan.Renew > 0 {
		stop = l.renew(ctx, plan, id)
	}
	// Settle (or report what was recorded) after the handler, also when it panics.
	defer func() {
		stop()
		used := rec.total()
		switch {
		case reserved:
			if used == nil {
				used = plan.Reserve
			}
			l.settle(after, plan, id, used)
		case len(used) > 0 && plan.Budget != "" && len(plan.Reserve) == 0:
			// Reported under a key of the request: a retry's report replays it.
			_, err := l.opts.Reporter.ReportUsage(after, spendcap.ReportUsageParams{BudgetID: plan.Budget, Deltas: used,
				DedupKey: suffixed(key, "-used"), AlsoCharge: plan.AlsoCharge})
			if err != nil {
				l.log("report after the handler", plan, id, err)
			}
		}
	}()
	next.ServeHTTP(w, r.WithContext(ctx))
}

// failed handles a backend failure: logged and counted; a 503 unless FailOpen, in which case it
// says to go on.
func (l *Limiter) failed(w http.ResponseWriter, r *http.Request, err error, call string) bool {
	decision, count := "refused", &l.refused
	if l.opts.FailOpen {
		decision, count = "allowed", &l.allowed
	}
	count.Add(1)
	l.errors.WithLabelValues(decision).Inc()
	l.opts.Logger.Error("httplimit: backend call failed", "call", call, "decision", decision, "path", r.URL.Path, "err", err)
	if l.opts.FailOpen {
		return true
	}
	problem(w, http.StatusServiceUnavailable, "unavailable", "Limits unavailable",
		"The service could not check its limits; try again.", nil)
	return false
}

// release ends the request's leases, retrying a failed call a few times: a lease left behind
// holds a concurrency slot until it expires.
func (l *Limiter) release(ctx context.Context, plan Plan, id string) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		}
		if _, err = l.opts.Quotas.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: plan.Quotas[0], HolderID: id,
			AlsoPolicies: plan.Quotas[1:]}); err == nil {
			return
		}
	}
	l.log("release_quota", plan, id, err)
}

// settle settles the request's reservation with used, retrying a failed call: a retry of a
// settle that went through finds the reservation finished (ErrReservationNotFound), so it is
// never counted twice.
func (l *Limiter) settle(ctx context.Context, plan Plan, id string, used map[string]int64) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		}
		_, err = l.opts.Budgets.Settle(ctx, spendcap.SettleParams{BudgetID: plan.Budget, ReservationID: "httplimit-" + id, Actual: used})
		if err == nil || errors.Is(err, spendcap.ErrReservationNotFound) {
			return
		}
	}
	l.log("settle", plan, id, err)
}

// renew renews the request's leases every plan.Renew until the returned stop is called.
func (l *Limiter) renew(ctx context.Context, plan Plan, id string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(plan.Renew)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := l.opts.Quotas.RenewQuota(context.WithoutCancel(ctx), spendcap.RenewQuotaParams{PolicyID: plan.Quotas[0],
					HolderID: id, AlsoPolicies: plan.Quotas[1:]}); err != nil {
					l.log("renew_quota", plan, id, err)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (l *Limiter) log(call string, plan Plan, id string, err error) {
	l.opts.Logger.Error("httplimit: backend call after the handler failed", "call", call, "budget_id", plan.Budget,
		"request_id", id, "err", err)
}

// suffixed is key with suffix, or "" for no key.
func suffixed(key, suffix string) string {
	if key == "" {
		return ""
	}
	return key + suffix
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
