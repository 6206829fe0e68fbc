package conformance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("QuotaRateLimitAdmitsExactlyMaxRequests", quotaRateLimit)
	register("QuotaEntryExactlyOneWindowOldNoLongerCounts", quotaWindowEdge)
	register("QuotaAlreadyHeldForALiveHolder", quotaAlreadyHeld)
	register("QuotaConcurrencyCapWithLeasesExpiring", quotaConcurrency)
	register("QuotaRenewExtendsALease", quotaRenew)
	register("QuotaRenewAtAnEarlierInstantMovesTheExpiryBack", quotaRenewEarlier)
	register("QuotaDoubleReleaseFreesNothingTheSecondTime", quotaDoubleRelease)
	register("QuotaReleaseFreesTheSlotAtOnce", quotaReleaseFrees)
	register("QuotaUnknownPolicyRaisesSC006", quotaUnknown)
	register("QuotaValidationErrors", quotaValidation)
	register("QuotaCreateIsIdempotentAndConflictsOnOtherDefinitions", quotaCreate)
	register("QuotaStatusListsLiveHolders", quotaStatus)
	register("QuotaDeletePolicy", quotaDelete)
}

func acquire(b spendcap.Backend, policy, holder string, at time.Time) (spendcap.Acquired, error) {
	return b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: policy, HolderID: holder, At: at})
}

// requireAcquired compares an acquire's result; want.PolicyID defaults to p1, the policy of every
// single-policy scenario.
func requireAcquired(t *testing.T, got spendcap.Acquired, err error, want spendcap.Acquired) {
	t.Helper()
	if want.PolicyID == "" {
		want.PolicyID = "p1"
	}
	if err != nil {
		t.Fatalf("want %+v, got error %v", want, err)
	}
	if got != want {
		t.Fatalf("acquire\n got %+v\nwant %+v", got, want)
	}
}

func admitted(inWindow, active int64) spendcap.Acquired {
	return spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonOK, InWindow: inWindow, Active: active}
}

func policy(t *testing.T, b spendcap.Backend, p spendcap.CreateQuotaPolicyParams) {
	t.Helper()
	if p.PolicyID == "" {
		p.PolicyID = "p1"
	}
	if p.At.IsZero() {
		p.At = day0
	}
	if r, err := b.CreateQuotaPolicy(ctx, p); err != nil || !r.Created {
		t.Fatalf("create_quota_policy: %+v %v", r, err)
	}
}

func quotaRateLimit(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 10 * time.Second, MaxRequests: 3, LeaseTTL: 1 * time.Second})
	for i := 0; i < 3; i++ {
		at := day0.Add(time.Duration(i) * time.Second)
		o, err := acquire(b, "p1", fmt.Sprintf("h%d", i), at)
		requireAcquired(t, o, err, admitted(int64(i+1), int64(min(i+1, 1))))
	}
	// The fourth within the window waits for the oldest entry (day0) to leave: day0 + 10s - at.
	o, err := acquire(b, "p1", "h3", day0.Add(2500*time.Millisecond))
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: false, Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 7500 * time.Millisecond, InWindow: 3, Active: 1})
	// A refusal records nothing.
	o, err = acquire(b, "p1", "h3", day0.Add(9999*time.Millisecond))
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: false, Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 1 * time.Millisecond, InWindow: 3, Active: 0})
}

func quotaWindowEdge(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 10 * time.Second, MaxRequests: 1, LeaseTTL: 1 * time.Second})
	o, err := acquire(b, "p1", "a", day0)
	requireAcquired(t, o, err, admitted(1, 1))
	o, err = acquire(b, "p1", "b", day0.Add(10*time.Second-time.Millisecond))
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonRateLimited, RetryAfter: 1 * time.Millisecond, InWindow: 1})
	// Exactly one window later the entry no longer counts.
	o, err = acquire(b, "p1", "b", day0.Add(10*time.Second))
	requireAcquired(t, o, err, admitted(1, 1))
}

func quotaAlreadyHeld(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 60 * time.Second, MaxRequests: 2, MaxConcurrent: 1, LeaseTTL: 30 * time.Second})
	o, err := acquire(b, "p1", "h", day0)
	requireAcquired(t, o, err, admitted(1, 1))
	// A live holder is admitted again without counting: no window entry, no new lease.
	o, err = acquire(b, "p1", "h", day0.Add(time.Second))
	requireAcquired(t, o, err, spendcap.Acquired{Admitted: true, Reason: spendcap.QuotaReasonAlreadyHeld, InWindow: 1, Active: 1})
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p1", At: day0.Add(time.Second)})
	if err != nil || st.InWindow != 1 || st.Active != 1 || !slices.Equal(st.Holders, []string{"h"}) {
		t.Errorf("status %+v %v", st, err)
	}
}

func quotaConcurrency(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 2, LeaseTTL: 30 * time.Second})
	o, err := acquire(b, "p1", "a", day0)
	requireAcquired(t, o, err, admitted(0, 1))
	o, err = acquire(b, "p1", "b", day0.Add(10*time.Second))
	requireAcquired(t, o, err, admitted(0, 2))
	// Full: the earliest lease (a) expires at day0 + 30s.
	o, err = acquire(b, "p1", "c", day0.Add(20*time.Second))
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonConcurrencyLimited, RetryAfter: 10000 * time.Millisecond, Active: 2})
	// a crashed: nobody releases it, yet its slot frees itself after lease_seconds.
	o, err = acquire(b, "p1", "c", day0.Add(30*time.Second))
	requireAcquired(t, o, err, admitted(0, 2))
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p1", At: day0.Add(30 * time.Second)})
	if err != nil || !slices.Equal(st.Holders, []string{"b", "c"}) || st.Active != 2 {
		t.Errorf("status %+v %v", st, err)
	}
}

func quotaRenew(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 1, LeaseTTL: 30 * time.Second})
	requireAcquired(t, must(acquire(b, "p1", "h", day0)), nil, admitted(0, 1))
	exp, err := b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "p1", HolderID: "h", At: day0.Add(20 * time.Second)})
	if err != nil || !exp.Equal(day0.Add(50*time.Second)) {
		t.Fatalf("renew = %v, %v; want at + lease", exp, err)
	}
	// Past the first expiry the renewed lease still holds the slot.
	o, err := acquire(b, "p1", "other", day0.Add(40*time.Second))
	requireAcquired(t, o, err, spendcap.Acquired{Reason: spendcap.QuotaReasonConcurrencyLimited, RetryAfter: 10000 * time.Millisecond, Active: 1})
	// An expired lease cannot be renewed; nor can one never held.
	_, err = b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "p1", HolderID: "h", At: day0.Add(50 * time.Second)})
	requireCode(t, err, "SC002", "holder_id: ")
	_, err = b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "p1", HolderID: "never", At: day0})
	requireCode(t, err, "SC002", "holder_id: ")
}

func quotaRenewEarlier(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 1, LeaseTTL: 30 * time.Second})
	requireAcquired(t, must(acquire(b, "p1", "h", day0.Add(time.Hour))), nil, admitted(0, 1))
	// A renewal is at + lease_seconds even when that is before the expiry it replaces (a replayed
	// log, a caller's clock behind the server's).
	exp, err := b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "p1", HolderID: "h", At: day0})
	if err != nil || !exp.Equal(day0.Add(30*time.Second)) {
		t.Fatalf("renew = %v, %v; want at + lease", exp, err)
	}
	o, err := acquire(b, "p1", "other", day0.Add(time.Minute))
	requireAcquired(t, o, err, admitted(0, 1))
}

func quotaReleaseFrees(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 1, LeaseTTL: 30 * time.Second})
	a, err := acquire(b, "p1", "a", day0)
	requireAcquired(t, a, err, admitted(0, 1))
	if r, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "p1", HolderID: "a", At: day0.Add(time.Second)}); err != nil || !r {
		t.Fatalf("release a: %v %v", r, err)
	}
	// Long before a's lease would have expired, its slot is free again.
	a, err = acquire(b, "p1", "b", day0.Add(2*time.Second))
	requireAcquired(t, a, err, admitted(0, 1))
}

func quotaDoubleRelease(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 2, LeaseTTL: 30 * time.Second})
	must(acquire(b, "p1", "a", day0))
	must(acquire(b, "p1", "b", day0))
	release := func(h string, at time.Time) bool {
		r, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "p1", HolderID: h, At: at})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if !release("a", day0.Add(time.Second)) || release("a", day0.Add(2*time.Second)) {
		t.Fatal("release a: want true, then false")
	}
	// The second release of a did not free b's slot.
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p1", At: day0.Add(2 * time.Second)})
	if err != nil || st.Active != 1 || !slices.Equal(st.Holders, []string{"b"}) {
		t.Errorf("status after a double release: %+v %v", st, err)
	}
	// A lease that expired is not held: releasing it frees nothing.
	if release("b", day0.Add(30*time.Second)) {
		t.Error("release of an expired lease returned true")
	}
	if release("nobody", day0) {
		t.Error("release of an unknown holder returned true")
	}
}

func quotaUnknown(t *testing.T, b spendcap.Backend) {
	_, err := acquire(b, "nope", "h", day0)
	requireCode(t, err, "SC006", "policy_id: ")
	_, err = b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: "nope", HolderID: "h", At: day0})
	requireCode(t, err, "SC006", "policy_id: ")
	_, err = b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "nope", HolderID: "h", At: day0})
	requireCode(t, err, "SC006", "policy_id: ")
	_, err = b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "nope", At: day0})
	requireCode(t, err, "SC006", "policy_id: ")
	if d, err := b.DeleteQuotaPolicy(ctx, spendcap.DeleteQuotaPolicyParams{PolicyID: "nope"}); err != nil || d {
		t.Errorf("delete of an unknown policy: %v %v", d, err)
	}
}

func quotaValidation(t *testing.T, b spendcap.Backend) {
	for _, tc := range []struct {
		p   spendcap.CreateQuotaPolicyParams
		arg string
	}{
		{spendcap.CreateQuotaPolicyParams{}, "policy_id"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "a{b}"}, "policy_id"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: strings.Repeat("p", 129)}, "policy_id"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", Window: -1 * time.Second}, "window_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", Window: 2592001 * time.Second}, "window_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", MaxRequests: -1, Window: 1 * time.Second}, "max_requests"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", MaxRequests: 1000001, Window: 1 * time.Second}, "max_requests"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", MaxRequests: 5}, "window_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", MaxConcurrent: -1}, "max_concurrent"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", LeaseTTL: -1 * time.Second}, "lease_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", LeaseTTL: 86401 * time.Second}, "lease_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", Window: 1500 * time.Millisecond, MaxRequests: 1}, "window_seconds"},
		{spendcap.CreateQuotaPolicyParams{PolicyID: "p", LeaseTTL: time.Millisecond}, "lease_seconds"},
	} {
		_, err := b.CreateQuotaPolicy(ctx, tc.p)
		requireCode(t, err, "SC002", tc.arg+": ")
	}
	_, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p"})
	requireCode(t, err, "SC006", "policy_id: ")
	policy(t, b, spendcap.CreateQuotaPolicyParams{MaxConcurrent: 1})
	_, err = acquire(b, "p1", "", day0)
	requireCode(t, err, "SC002", "holder_id: ")
	_, err = acquire(b, "p1", "a b", day0)
	requireCode(t, err, "SC002", "holder_id: ")
	_, err = b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "p1", HolderID: "{x}", At: day0})
	requireCode(t, err, "SC002", "holder_id: ")
}

func quotaCreate(t *testing.T, b spendcap.Backend) {
	def := spendcap.CreateQuotaPolicyParams{PolicyID: "p1", Window: 60 * time.Second, MaxRequests: 10, MaxConcurrent: 2, LeaseTTL: 30 * time.Second, At: day0}
	policy(t, b, def)
	if r, err := b.CreateQuotaPolicy(ctx, def); err != nil || r.Created || r.PolicyID != "p1" {
		t.Errorf("create again: %+v %v", r, err)
	}
	for _, change := range []func(p *spendcap.CreateQuotaPolicyParams){
		func(p *spendcap.CreateQuotaPolicyParams) { p.Window = 61 * time.Second },
		func(p *spendcap.CreateQuotaPolicyParams) { p.MaxRequests = 11 },
		func(p *spendcap.CreateQuotaPolicyParams) { p.MaxConcurrent = 0 },
		func(p *spendcap.CreateQuotaPolicyParams) { p.LeaseTTL = 0 },
	} {
		p := def
		change(&p)
		_, err := b.CreateQuotaPolicy(ctx, p)
		requireCode(t, err, "SC005", "policy_id: ")
	}
	// Defaults: no limits, leases of 60 seconds.
	policy(t, b, spendcap.CreateQuotaPolicyParams{PolicyID: "open"})
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "open", At: day0})
	want := spendcap.QuotaStatus{PolicyID: "open", LeaseTTL: 60 * time.Second, Holders: []string{}}
	if err != nil || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("status of a default policy: %+v %v", st, err)
	}
}

func quotaStatus(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 10 * time.Second, LeaseTTL: 5 * time.Second})
	for i, h := range []string{"b", "a", "Z", "c"} {
		must(acquire(b, "p1", h, day0.Add(time.Duration(i)*time.Second)))
	}
	st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p1", At: day0.Add(5500 * time.Millisecond)})
	want := spendcap.QuotaStatus{PolicyID: "p1", Window: 10 * time.Second, LeaseTTL: 5 * time.Second, InWindow: 4, Active: 3, Holders: []string{"Z", "a", "c"}}
	if err != nil || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("status\n got %+v %v\nwant %+v", st, err, want)
	}
	st, err = b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "p1", At: day0.Add(12 * time.Second)})
	want = spendcap.QuotaStatus{PolicyID: "p1", Window: 10 * time.Second, LeaseTTL: 5 * time.Second, InWindow: 1, Active: 0, Holders: []string{}}
	if err != nil || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("status later\n got %+v %v\nwant %+v", st, err, want)
	}
}

func quotaDelete(t *testing.T, b spendcap.Backend) {
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 10 * time.Second, MaxRequests: 1, MaxConcurrent: 1})
	must(acquire(b, "p1", "h", day0))
	if d, err := b.DeleteQuotaPolicy(ctx, spendcap.DeleteQuotaPolicyParams{PolicyID: "p1"}); err != nil || !d {
		t.Fatalf("delete: %v %v", d, err)
	}
	_, err := acquire(b, "p1", "h", day0)
	requireCode(t, err, "SC006", "policy_id: ")
	// Re-created, the policy starts empty: no entries, no leases.
	policy(t, b, spendcap.CreateQuotaPolicyParams{Window: 10 * time.Second, MaxRequests: 1, MaxConcurrent: 1})
	o, err := acquire(b, "p1", "other", day0)
	requireAcquired(t, o, err, admitted(1, 1))
}
