package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("QuotaSetAdmitsOnEveryPolicyOrOnNone", quotaSetAllOrNone)
	register("QuotaSetRenewsAndReleasesEveryLiveLeaseOfTheHolder", quotaSetRenewRelease)
	register("QuotaSetArgumentsAreChecked", quotaSetValidation)
}

func acquireSet(b spendcap.Backend, policy, holder string, at time.Time, also ...string) (spendcap.Acquired, error) {
	return b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: policy, HolderID: holder, At: at, AlsoPolicies: also})
}

// requireHolders checks the live holders of policy at at.
func requireHolders(t *testing.T, b spendcap.Backend, policy string, at time.Time, inWindow int64, want ...string) {
	t.Helper()
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: policy, At: at})
	if want == nil {
		want = []string{}
	}
	if err != nil || st.InWindow != inWindow || !slices.Equal(st.Holders, want) {
		t.Fatalf("status of %s: %+v, %v; want in_window %d, holders %v", policy, st, err, inWindow, want)
	}
}

func quotaSetAllOrNone(t *testing.T, b spendcap.Backend) {
	// Requests per minute: 2 per key, 5 for key2, 3 for their team.
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "key-rpm", Window: 60 * time.Second, MaxRequests: 2})
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "key2-rpm", Window: 60 * time.Second, MaxRequests: 5})
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "team-rpm", Window: 60 * time.Second, MaxRequests: 3})
	sec := func(n int) time.Time { return day0.Add(time.Duration(n) * time.Second) }
	o, err := acquireSet(b, "key-rpm", "h1", sec(0), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, InWindow: 1, Active: 1, PolicyID: "key-rpm"})
	o, err = acquireSet(b, "key-rpm", "h2", sec(1), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, InWindow: 2, Active: 2, PolicyID: "key-rpm"})
	// The key refuses: the team admits nothing either.
	o, err = acquireSet(b, "key-rpm", "h3", sec(2), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 58000 * time.Millisecond, InWindow: 2, Active: 2, PolicyID: "key-rpm"})
	requireHolders(t, b, "team-rpm", sec(2), 2, "h1", "h2")
	o, err = acquireSet(b, "key2-rpm", "h4", sec(3), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, InWindow: 1, Active: 1, PolicyID: "key2-rpm"})
	// The team refuses: key2, which had room, admits nothing.
	o, err = acquireSet(b, "key2-rpm", "h5", sec(4), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 56000 * time.Millisecond, InWindow: 3, Active: 3, PolicyID: "team-rpm"})
	requireHolders(t, b, "key2-rpm", sec(4), 1, "h4")
	// Both full: the first refusal in ascending policy_id order is reported.
	o, err = acquireSet(b, "team-rpm", "h6", sec(5), "key-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 55000 * time.Millisecond, InWindow: 2, Active: 2, PolicyID: "key-rpm"})
	// A window later every policy admits again.
	o, err = acquireSet(b, "key2-rpm", "h5", sec(61), "team-rpm")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, InWindow: 2, Active: 2, PolicyID: "key2-rpm"})
	requireHolders(t, b, "team-rpm", sec(61), 2, "h4", "h5")
}

func quotaSetRenewRelease(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "a", MaxConcurrent: 2, LeaseTTL: 30 * time.Second})
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "b", MaxConcurrent: 2, LeaseTTL: 60 * time.Second})
	sec := func(n int) time.Time { return day0.Add(time.Duration(n) * time.Second) }
	o, err := acquireSet(b, "a", "h", sec(0), "b")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, Active: 1, PolicyID: "a"})
	o, err = acquireSet(b, "a", "h", sec(1), "b")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonAlreadyHeld, Active: 1, PolicyID: "a"})
	// h2 holds b already: the set takes a lease on a only, and that is ok.
	must(acquire(b, "b", "h2", sec(1)))
	o, err = acquireSet(b, "a", "h2", sec(2), "b")
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, Active: 2, PolicyID: "a"})
	requireHolders(t, b, "b", sec(2), 0, "h", "h2")
	// Renewed on every policy where the holder has a live lease, each by its own lease_seconds.
	exp, err := b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "a", HolderID: "h", At: sec(20), AlsoPolicies: []string{"b"}})
	if err != nil || !exp.Equal(sec(50)) {
		t.Fatalf("renew = %v, %v; want %v", exp, err, sec(50))
	}
	requireHolders(t, b, "b", sec(70), 0, "h")
	requireHolders(t, b, "a", sec(40), 0, "h")
	// No live lease on the named policy: SC002, and nothing renewed elsewhere.
	_, err = b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "a", HolderID: "h2", At: sec(55), AlsoPolicies: []string{"b"}})
	requireCode(t, err, "SC002", "holder_id: ")
	requireHolders(t, b, "b", sec(62), 0, "h")
	// a's lease of h is over at 50s, b's holds: released on the set.
	if r, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "a", HolderID: "h", At: sec(62), AlsoPolicies: []string{"b"}}); err != nil || !r {
		t.Fatalf("release = %v, %v; want true", r, err)
	}
	requireHolders(t, b, "b", sec(62), 0)
	if r, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "a", HolderID: "h", At: sec(62), AlsoPolicies: []string{"b"}}); err != nil || r {
		t.Fatalf("second release = %v, %v; want false", r, err)
	}
}

func quotaSetValidation(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "p1", MaxConcurrent: 1})
	_, err := acquireSet(b, "p1", "h", day0, "nope")
	requireCode(t, err, "SC006", "also_policies: ")
	_, err = acquireSet(b, "nope", "h", day0, "p1")
	requireCode(t, err, "SC006", "policy_id: ")
	_, err = acquireSet(b, "p1", "h", day0, "bad id")
	requireCode(t, err, "SC002", "also_policies: ")
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i+2)
	}
	_, err = acquireSet(b, "p1", "h", day0, many...)
	requireCode(t, err, "SC002", "also_policies: ")
	_, err = b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "p1", HolderID: "h", At: day0, AlsoPolicies: []string{"nope"}})
	requireCode(t, err, "SC006", "also_policies: ")
	// Naming the policy itself again is naming it once; nothing was admitted by the failures.
	o, err := acquireSet(b, "p1", "h", day0, "p1")
	requireAcquired(t, o, err, admitted(0, 1))
}
