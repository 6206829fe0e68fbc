package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/httplimit"
)

// The middleware rows serve requests in process (no network: httptest's recorder) through
// httplimit in front of a handler that does nothing, each charging 1 request to one of the 10,000
// budgets, against the bare report_usage call on the same budgets: the difference is what the
// middleware adds to a request (its headers, its problem bodies, its bookkeeping). Printed, no
// target: the call is most of a request's cost either way.
const (
	mwPG = "httplimit pg report 1 dim per request (in process)"
	mwVK = "httplimit valkey report 1 dim per request (in process)"
)

func middlewareBenches(pg, vk spendcap.Budgets) ([]bench, error) {
	row := func(b spendcap.Budgets) (op, error) {
		l, err := httplimit.New(httplimit.Options{Budgets: b,
			Key: func(r *http.Request) string { return r.URL.Path[1:] },
			Plan: func(r *http.Request, key string) (httplimit.Plan, error) {
				return httplimit.Plan{Budget: key, Report: map[string]int64{"tokens": 1}}, nil
			}})
		if err != nil {
			return nil, err
		}
		h := l.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		return func(ctx context.Context, w int, i int64) error {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("/b%d", (int64(w)*7919+i*104729)%budgets), nil))
			if rec.Code != http.StatusOK {
				return fmt.Errorf("middleware answered %d: %s", rec.Code, rec.Body)
			}
			return nil
		}, nil
	}
	pgRow, err := row(pg)
	if err != nil {
		return nil, err
	}
	vkRow, err := row(vk)
	if err != nil {
		return nil, err
	}
	c := []int{32}
	return []bench{{name: mwPG, cs: c, run: pgRow}, {name: mwVK, cs: c, run: vkRow}}, nil
}

// middlewareOverhead prints each middleware row's latency against the bare call's at c=32.
func middlewareOverhead(results []Result) {
	for _, m := range []struct{ row, bare string }{{mwPG, "pg report_usage 10k budgets 1 dim"}, {mwVK, "valkey sc_report_usage 1 dim"}} {
		var mr, br *Result
		for i := range results {
			if results[i].Concurrency != 32 {
				continue
			}
			switch results[i].Name {
			case m.row:
				mr = &results[i]
			case m.bare:
				br = &results[i]
			}
		}
		if mr == nil || br == nil {
			continue
		}
		fmt.Printf("%-72s p50 %+.0f µs, ops/s %.2f× the bare call\n", m.row+" overhead (c=32)", mr.P50us-br.P50us, mr.OpsPerSec/br.OpsPerSec)
	}
}
