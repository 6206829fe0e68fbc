package tests

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

type quotaListingBackend interface {
	spendcap.Backend
	spendcap.QuotaLister
}

var quotaListT0 = time.Date(2026, 8, 3, 12, 0, 0, 0, time.UTC)

// listedPolicies renders a page: "id in_window/max active/max" per policy, then "| next".
func listedPolicies(t *testing.T, b spendcap.QuotaLister, p spendcap.ListQuotaPoliciesParams) string {
	t.Helper()
	page, err := b.ListQuotaPolicies(ctx, p)
	if err != nil {
		t.Fatalf("ListQuotaPolicies(%+v): %v", p, err)
	}
	var s []string
	for _, q := range page.Policies {
		s = append(s, fmt.Sprintf("%s %d/%d %d/%d", q.PolicyID, q.InWindow, q.MaxRequests, q.Active, q.MaxConcurrent))
	}
	out := strings.Join(s, ", ")
	if page.Next != "" {
		out += " | " + page.Next
	}
	return out
}

// Policies are listed in id order with their window count and live leases at the instant asked,
// a page at a time, found by prefix; a deleted policy is gone from the list.
func TestListQuotaPoliciesCountTheWindowAndTheLeases(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b quotaListingBackend) {
		for _, p := range []spendcap.CreateQuotaPolicyParams{
			{PolicyID: "acme/rpm", Window: time.Minute, MaxRequests: 10},
			{PolicyID: "acme/streams", MaxConcurrent: 2, LeaseTTL: 30 * time.Second},
			{PolicyID: "beta", Window: time.Hour, MaxRequests: 100, MaxConcurrent: 5},
			{PolicyID: "gone", MaxConcurrent: 1},
		} {
			p.At = quotaListT0
			if _, err := b.CreateQuotaPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range []struct {
			policy, holder string
			at             time.Duration
		}{{"acme/rpm", "h1", 0}, {"acme/rpm", "h2", 0}, {"acme/rpm", "h3", 50 * time.Second},
			{"acme/streams", "s1", 0}, {"acme/streams", "s2", 40 * time.Second}, {"beta", "x", 0}} {
			if _, err := b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: a.policy, HolderID: a.holder,
				At: quotaListT0.Add(a.at)}); err != nil {
				t.Fatalf("acquire %d: %v", i, err)
			}
		}
		if _, err := b.DeleteQuotaPolicy(ctx, spendcap.DeleteQuotaPolicyParams{PolicyID: "gone"}); err != nil {
			t.Fatal(err)
		}
		at := quotaListT0.Add(50 * time.Second)
		for _, c := range []struct {
			p    spendcap.ListQuotaPoliciesParams
			want string
		}{
			{spendcap.ListQuotaPoliciesParams{At: at}, "acme/rpm 3/10 3/0, acme/streams 0/0 1/2, beta 1/100 1/5"},
			{spendcap.ListQuotaPoliciesParams{At: at.Add(20 * time.Second)}, "acme/rpm 1/10 1/0, acme/streams 0/0 0/2, beta 1/100 0/5"}, // leases of 30 s and 60 s ended
			{spendcap.ListQuotaPoliciesParams{At: at, MaxRows: 2}, "acme/rpm 3/10 3/0, acme/streams 0/0 1/2 | acme/streams"},
			{spendcap.ListQuotaPoliciesParams{At: at, After: "acme/streams"}, "beta 1/100 1/5"},
			{spendcap.ListQuotaPoliciesParams{At: at, IDPrefix: "acme/"}, "acme/rpm 3/10 3/0, acme/streams 0/0 1/2"},
			{spendcap.ListQuotaPoliciesParams{At: at, IDPrefix: "nope"}, ""},
		} {
			if got := listedPolicies(t, b, c.p); got != c.want {
				t.Errorf("%+v:\n got %s\nwant %s", c.p, got, c.want)
			}
		}
		for _, c := range []struct {
			p   spendcap.ListQuotaPoliciesParams
			arg string
		}{
			{spendcap.ListQuotaPoliciesParams{IDPrefix: "a{b"}, "id_prefix"},
			{spendcap.ListQuotaPoliciesParams{After: "x y"}, "after"},
			{spendcap.ListQuotaPoliciesParams{MaxRows: 1001}, "max_rows"},
		} {
			if _, err := b.ListQuotaPolicies(ctx, c.p); !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), c.arg) {
				t.Errorf("%+v: %v, want SC002 naming %s", c.p, err, c.arg)
			}
		}
	})
}
