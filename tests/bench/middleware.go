package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

func middlewareBenches(only string, pg, vk spendcap.Budgets) ([]bench, error) {
	if only != "" && !strings.Contains(mwPG+"\n"+mwVK, only) {
		return nil, nil
	}
	row := func(b spendcap.Budgets) (op, error) {
		// An hour: the definitions read by the warm-up below stay fresh through the rows that run
		// after the others (with a minute, each row would also time their background reads).
		l, err := httplimit.New(httplimit.Options{Budgets: b, DefinitionTTL: time.Hour,
			Key: func(r *http.Request) string { return r.URL.Path[1:] },
			Plan: func(r *http.Request, key string) (httplimit.Plan, error) {
				return httplimit.Plan{Budget: key, Report: map[string]int64{"tokens": 1}}, nil
			}})
		if err != nil {
			return nil, err
		}
		h := l.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		// The requests are made once: the rows time the middleware, not the making of requests.
		reqs := make([]*http.Request, budgets)
		for n := range reqs {
			reqs[n] = httptest.NewRequest(http.MethodGet, fmt.Sprintf("/b%d", n), nil)
		}
		serve := func(ctx context.Context, n int64) error {
			rec := &answer{header: http.Header{}, code: http.StatusOK}
			h.ServeHTTP(rec, reqs[n].WithContext(ctx))
			if rec.code != http.StatusOK {
				return fmt.Errorf("middleware answered %d", rec.code)
			}
			return nil
		}
		// Warm: each budget's first request reads its definition for RateLimit-Policy once; the
		// rows measure the requests after it, as a running gateway serves them.
		var wg sync.WaitGroup
		var warmErr atomic.Value
		for g := range int64(16) {
			wg.Go(func() {
				for n := g; n < budgets; n += 16 {
					if err := serve(context.Background(), n); err != nil {
						warmErr.Store(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := warmErr.Load().(error); err != nil {
			return nil, err
		}
		return func(ctx context.Context, w int, i int64) error {
			return serve(ctx, (int64(w)*7919+i*104729)%budgets)
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
	c := []int{1, 32}
	return []bench{{name: mwPG, cs: c, run: pgRow}, {name: mwVK, cs: c, run: vkRow}}, nil
}

// answer is a ResponseWriter that keeps the status and the header fields and drops the body.
type answer struct {
	header http.Header
	code   int
}

func (a *answer) Header() http.Header         { return a.header }
func (a *answer) Write(b []byte) (int, error) { return len(b), nil }
func (a *answer) WriteHeader(code int)        { a.code = code }

// middlewareOverhead prints each middleware row's latency and throughput against the bare
// call's: at c=1 the latency difference is what a request pays for the middleware; at c=32, on a
// machine whose cores the client shares with the servers, the client's extra work shows as
// throughput.
func middlewareOverhead(results []Result) {
	for _, m := range []struct{ row, bare string }{{mwPG, "pg report_usage 10k budgets 1 dim"}, {mwVK, "valkey sc_report_usage 1 dim"}} {
		for _, c := range []int{1, 32} {
			var mr, br *Result
			for i := range results {
				if results[i].Concurrency != c {
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
			fmt.Printf("%-72s p50 %+.0f µs, ops/s %.2f× the bare call\n", fmt.Sprintf("%s overhead (c=%d)", m.row, c),
				mr.P50us-br.P50us, mr.OpsPerSec/br.OpsPerSec)
		}
	}
}
