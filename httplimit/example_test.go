package httplimit_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/httplimit"
	"github.com/spendcap/spendcap/internal/testenv"
)

// A gateway in front of an LLM API: each API key is a budget under its team and organisation,
// limited to 60 requests a minute and 4 at a time. A request reserves 1,000 tokens before it is
// proxied, and settles what the upstream's usage field says it cost.
func Example_gateway() {
	pool, err := pgxpool.New(ctx, testenv.ExampleDatabase())
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})

	// Provisioning, run on every deploy: if_exists update makes the budgets follow it.
	for _, p := range []spendcap.CreateBudgetParams{
		{BudgetID: "acme", HardLimits: map[string]int64{"tokens": 1_000_000}, ResetEvery: "1 month"},
		{BudgetID: "acme/research", ParentID: "acme", HardLimits: map[string]int64{"tokens": 200_000}, ResetEvery: "1 month"},
		{BudgetID: "acme/research/key-1", ParentID: "acme/research", HardLimits: map[string]int64{"tokens": 50_000}, ResetEvery: "1 day"},
	} {
		p.IfExists = spendcap.IfExistsUpdate
		if _, err := budgets.CreateBudget(ctx, p); err != nil {
			panic(err)
		}
	}
	for _, p := range []spendcap.CreateQuotaPolicyParams{
		{PolicyID: "acme/rpm", Window: time.Minute, MaxRequests: 60, LeaseTTL: time.Minute},
		{PolicyID: "acme/concurrency", MaxConcurrent: 4, LeaseTTL: time.Minute},
	} {
		if _, err := budgets.CreateQuotaPolicy(ctx, p); err != nil {
			panic(err)
		}
	}

	// The upstream: answers with the tokens the call used.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"choices":[{"text":"hello"}],"usage":{"total_tokens":42}}`)
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	// What the call cost, from the upstream's usage field (the request's context reaches here).
	proxy.ModifyResponse = func(res *http.Response) error {
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		var answer struct {
			Usage struct {
				TotalTokens int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(body, &answer) == nil {
			httplimit.Record(res.Request.Context(), map[string]int64{"tokens": answer.Usage.TotalTokens})
		}
		return nil
	}

	limiter, err := httplimit.New(httplimit.Options{
		Budgets: budgets,
		Quotas:  budgets,
		Plan: func(r *http.Request, key string) (httplimit.Plan, error) {
			if key != "key-1" {
				return httplimit.Plan{}, fmt.Errorf("unknown API key")
			}
			return httplimit.Plan{Budget: "acme/research/" + key, Reserve: map[string]int64{"tokens": 1000},
				Quotas: []string{"acme/rpm", "acme/concurrency"}}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	gateway := httptest.NewServer(limiter.Handler(proxy))
	defer gateway.Close()

	req, _ := http.NewRequest(http.MethodPost, gateway.URL+"/v1/completions", nil)
	req.Header.Set("X-API-Key", "key-1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	// The seconds until each window resets vary: show the rest.
	fmt.Println(res.StatusCode, regexp.MustCompile(`;t=\d+`).ReplaceAllString(res.Header.Get("RateLimit"), ""))
	st, _ := budgets.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "acme/research/key-1"})
	fmt.Println("used:", st.Usage["tokens"], "held:", st.Reserved["tokens"])
	// Output:
	// 200 "acme/rpm";r=59, "tokens";r=49000
	// used: 42 held: 0
}
