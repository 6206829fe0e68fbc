package httplimit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/httplimit"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// eachBackend runs f on PostgreSQL and on Valkey, each a fresh store.
func eachBackend(t *testing.T, f func(t *testing.T, b spendcap.Backend)) {
	for name, open := range map[string]func(*testing.T) spendcap.Backend{"postgres": openPostgres, "valkey": openValkey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, open(t))
		})
	}
}

func openPostgres(t *testing.T) spendcap.Backend {
	return gobinding.NewClient(testenv.Pool(t), gobinding.Options{})
}

func openValkey(t *testing.T) spendcap.Backend {
	c, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gateway provisions org → team → key (tokens and requests per day, the key 3 requests a day), a
// rate policy of 5 a minute and a concurrency cap of 2, and serves handler behind the middleware
// with plan for the key "k1".
func gateway(t *testing.T, b spendcap.Backend, opts httplimit.Options, plan httplimit.Plan, handler http.Handler) (*httptest.Server, *httplimit.Limiter) {
	t.Helper()
	for _, p := range []spendcap.CreateBudgetParams{
		{BudgetID: "org", HardLimits: map[string]int64{"tokens": 10_000, "requests": 100}, ResetEvery: "1 day"},
		{BudgetID: "org/team", ParentID: "org", HardLimits: map[string]int64{"tokens": 5_000}, ResetEvery: "1 day"},
		{BudgetID: "org/team/k1", ParentID: "org/team", HardLimits: map[string]int64{"requests": 3}, ResetEvery: "1 day"},
	} {
		if _, err := b.CreateBudget(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []spendcap.CreateQuotaPolicyParams{
		{PolicyID: "rpm", Window: time.Minute, MaxRequests: 5, LeaseTTL: time.Minute},
		{PolicyID: "streams", MaxConcurrent: 2, LeaseTTL: time.Minute},
	} {
		if _, err := b.CreateQuotaPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Budgets == nil {
		opts.Budgets = b
	}
	if opts.Quotas == nil {
		opts.Quotas = b
	}
	opts.Plan = func(r *http.Request, key string) (httplimit.Plan, error) {
		if key != "k1" {
			return httplimit.Plan{}, fmt.Errorf("unknown key %q", key)
		}
		return plan, nil
	}
	l, err := httplimit.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler(handler))
	t.Cleanup(srv.Close)
	return srv, l
}

func get(t *testing.T, url, key, id string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if id != "" {
		req.Header.Set("Idempotency-Key", id)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })

func TestEachAnswerSaysWhatIsLeftInTheRateLimitFields(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		plan := httplimit.Plan{Budget: "org/team/k1", Report: map[string]int64{"requests": 1, "tokens": 100}, Quotas: []string{"rpm"}}
		srv, _ := gateway(t, b, httplimit.Options{LegacyHeaders: true}, plan, ok)
		res := get(t, srv.URL, "k1", "")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		// requests: the key's 3 less 1; tokens: the team's 5000 less 100 (the key limits none).
		// The policy quotas are the key's own limits (tokens it does not limit: no quota).
		policy, limit := res.Header.Get("RateLimit-Policy"), res.Header.Get("RateLimit")
		if want := `"rpm";q=5;w=60, "requests";q=3;w=86400`; policy != want {
			t.Errorf("RateLimit-Policy %q, want %q", policy, want)
		}
		if !strings.HasPrefix(limit, `"rpm";r=4;t=60, "requests";r=2;t=`) || !strings.Contains(limit, `"tokens";r=4900;t=`) {
			t.Errorf("RateLimit %q", limit)
		}
		if res.Header.Get("X-RateLimit-Limit") != "3" || res.Header.Get("X-RateLimit-Remaining") != "2" || res.Header.Get("X-RateLimit-Reset") == "" {
			t.Errorf("X-RateLimit: %v", res.Header)
		}
		// No key, an unknown key.
		if res := get(t, srv.URL, "", ""); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("no key: %d", res.StatusCode)
		}
		if res := get(t, srv.URL, "k9", ""); res.StatusCode != http.StatusForbidden {
			t.Errorf("unknown key: %d", res.StatusCode)
		}
	})
}

func TestAtTheLimitTheAnswerIs429WithRetryAfterAndAProblem(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		plan := httplimit.Plan{Budget: "org/team/k1", Report: map[string]int64{"requests": 1}}
		srv, _ := gateway(t, b, httplimit.Options{}, plan, ok)
		for i := range 3 {
			if res := get(t, srv.URL, "k1", ""); res.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %d", i, res.StatusCode)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-API-Key", "k1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Content-Type") != "application/problem+json" ||
			res.Header.Get("Retry-After") == "" || body["budget_id"] != "org/team/k1" || body["dimension"] != "requests" {
			t.Fatalf("at the limit: %d %v %v", res.StatusCode, res.Header, body)
		}
		if !strings.Contains(res.Header.Get("RateLimit"), `"requests";r=0`) {
			t.Errorf("RateLimit at the limit: %q", res.Header.Get("RateLimit"))
		}
		// A rate policy refuses the 6th request of the minute, with its retry_after.
		rate := httplimit.Plan{Quotas: []string{"rpm"}}
		srv2, _ := gateway2(t, b, rate)
		for i := range 5 {
			if res := get(t, srv2.URL, "k1", ""); res.StatusCode != http.StatusOK {
				t.Fatalf("rate request %d: %d", i, res.StatusCode)
			}
		}
		res2 := get(t, srv2.URL, "k1", "")
		if res2.StatusCode != http.StatusTooManyRequests || res2.Header.Get("Retry-After") == "" ||
			!strings.Contains(res2.Header.Get("RateLimit"), `"rpm";r=0`) {
			t.Fatalf("6th request of the minute: %d %v", res2.StatusCode, res2.Header)
		}
	})
}

// gateway2 serves ok behind another limiter on b's existing budgets and policies.
func gateway2(t *testing.T, b spendcap.Backend, plan httplimit.Plan) (*httptest.Server, *httplimit.Limiter) {
	t.Helper()
	l, err := httplimit.New(httplimit.Options{Budgets: b, Quotas: b,
		Plan: func(*http.Request, string) (httplimit.Plan, error) { return plan, nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler(ok))
	t.Cleanup(srv.Close)
	return srv, l
}

func TestConcurrencyIsReleasedAfterAPanicAndAfterTheClientGoesAway(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		entered := make(chan struct{}, 1)
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/panic":
				panic(http.ErrAbortHandler) // net/http's quiet abort
			case "/wait":
				entered <- struct{}{}
				<-r.Context().Done()
			}
		})
		plan := httplimit.Plan{Quotas: []string{"streams"}}
		srv, _ := gateway(t, b, httplimit.Options{}, plan, handler)
		active := func() int64 {
			st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "streams"})
			if err != nil {
				t.Fatal(err)
			}
			return st.Active
		}
		for range 3 { // more than the cap of 2: each lease was released
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/panic", nil)
			req.Header.Set("X-API-Key", "k1")
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
		waitFor(t, func() bool { return active() == 0 }, "leases after panics")
		for range 3 {
			cctx, cancel := context.WithCancel(ctx)
			req, _ := http.NewRequestWithContext(cctx, http.MethodGet, srv.URL+"/wait", nil)
			req.Header.Set("X-API-Key", "k1")
			done := make(chan struct{})
			go func() {
				defer close(done)
				if res, err := http.DefaultClient.Do(req); err == nil {
					res.Body.Close()
				}
			}()
			<-entered
			if n := active(); n != 1 {
				t.Fatalf("while the stream runs: %d leases", n)
			}
			cancel()
			<-done
			waitFor(t, func() bool { return active() == 0 }, "leases after the client went away")
		}
	})
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAReservedRequestIsSettledWithWhatTheHandlerRecordedOnceUnderRetries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httplimit.Record(r.Context(), map[string]int64{"tokens": 120})
			httplimit.Record(r.Context(), map[string]int64{"tokens": 30})
		})
		plan := httplimit.Plan{Budget: "org/team/k1", Reserve: map[string]int64{"tokens": 1000}}
		srv, _ := gateway(t, b, httplimit.Options{}, plan, handler)
		for range 3 { // a client retrying one request
			if res := get(t, srv.URL, "k1", "req-1"); res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
		}
		if res := get(t, srv.URL, "k1", "req-2"); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "org/team"})
		if err != nil {
			t.Fatal(err)
		}
		if st.Usage["tokens"] != 300 || st.Reserved["tokens"] != 0 {
			t.Fatalf("team usage %v reserved %v, want 150 for each of two requests and nothing held", st.Usage, st.Reserved)
		}
	})
}

// failing is a client of a real server whose connection pool was then closed: every call fails.
func failing(t *testing.T, name string) spendcap.Backend {
	if name == "postgres" {
		pool, err := pgxpool.New(ctx, testenv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		return gobinding.NewClient(pool, gobinding.Options{})
	}
	rdb := testenv.Valkey(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = rdb.Close()
	return c
}

func TestABackendFailureFailsClosedByDefaultAndOpenByOption(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"postgres", "valkey"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := failing(t, name)
			plan := httplimit.Plan{Budget: "org", Report: map[string]int64{"requests": 1}, Quotas: []string{"rpm"}}
			for _, open := range []bool{false, true} {
				l, err := httplimit.New(httplimit.Options{Budgets: b, Quotas: b, FailOpen: open,
					Plan: func(*http.Request, string) (httplimit.Plan, error) { return plan, nil }})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(l.Handler(ok))
				res := get(t, srv.URL, "k1", "")
				srv.Close()
				refused, allowed := l.BackendErrors()
				switch {
				case !open && (res.StatusCode != http.StatusServiceUnavailable || refused != 1 || allowed != 0):
					t.Errorf("fail closed: %d, counted %d refused %d allowed", res.StatusCode, refused, allowed)
				case open && (res.StatusCode != http.StatusOK || refused != 0 || allowed != 1):
					t.Errorf("fail open: %d, counted %d refused %d allowed", res.StatusCode, refused, allowed)
				}
			}
		})
	}
}

func TestReportsThroughABatcherAreExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		batcher := spendcap.NewBatcher(b.(spendcap.BatchBackend), spendcap.BatcherOptions{})
		defer batcher.Close()
		plan := httplimit.Plan{Budget: "org/team", Report: map[string]int64{"tokens": 10}}
		srv, _ := gateway(t, b, httplimit.Options{Reporter: batcher}, plan, ok)
		var wg sync.WaitGroup
		codes := make(chan int, 600)
		for range 50 {
			wg.Go(func() {
				for range 12 {
					codes <- get(t, srv.URL, "k1", "").StatusCode
				}
			})
		}
		wg.Wait()
		close(codes)
		okN, refusedN := 0, 0
		for c := range codes {
			switch c {
			case http.StatusOK:
				okN++
			case http.StatusTooManyRequests:
				refusedN++
			default:
				t.Fatalf("status %d", c)
			}
		}
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "org/team"})
		if err != nil {
			t.Fatal(err)
		}
		// 5000 tokens at 10 a request: exactly 500 admitted, the rest refused.
		if okN != 500 || refusedN != 100 || st.Usage["tokens"] != 5000 {
			t.Fatalf("%d admitted, %d refused, usage %v", okN, refusedN, st.Usage)
		}
	})
}

func TestALongStreamKeepsItsLeaseByRenewingIt(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.Backend) {
		if _, err := b.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "short", MaxConcurrent: 1, LeaseTTL: time.Second}); err != nil {
			t.Fatal(err)
		}
		active := func() int64 {
			st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "short"})
			if err != nil {
				t.Fatal(err)
			}
			return st.Active
		}
		var during []int64
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for range 5 { // 2.5 s: past the 1 s lease, which the renewals keep live
				time.Sleep(500 * time.Millisecond)
				during = append(during, active())
			}
		})
		for _, renew := range []time.Duration{300 * time.Millisecond, 0} {
			during = nil
			l, err := httplimit.New(httplimit.Options{Quotas: b,
				Plan: func(*http.Request, string) (httplimit.Plan, error) {
					return httplimit.Plan{Quotas: []string{"short"}, Renew: renew}, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(l.Handler(handler))
			res := get(t, srv.URL, "k1", "")
			srv.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			renewed := fmt.Sprint(during) == "[1 1 1 1 1]"
			if renewed != (renew > 0) {
				t.Errorf("renew every %v: leases seen %v", renew, during)
			}
		}
	})
}
