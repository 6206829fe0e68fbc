package spendcap

import (
	"context"
	"time"
)

// Quotas is the quota-policy API of docs/semantics.md#quota-policies: a sliding-window rate limit and a cap on live
// leases per policy. Each method is one round trip; a zero At means "now" on the backend's clock.
type Quotas interface {
	// CreateQuotaPolicy creates a policy, or returns Created=false for an identical existing one.
	CreateQuotaPolicy(ctx context.Context, p CreateQuotaPolicyParams) (CreateQuotaPolicyResult, error)
	// AcquireQuota admits a holder or says why not and when to retry.
	AcquireQuota(ctx context.Context, p AcquireQuotaParams) (Acquired, error)
	// RenewQuota extends the holder's live lease and returns its new expiry.
	RenewQuota(ctx context.Context, p RenewQuotaParams) (time.Time, error)
	// ReleaseQuota ends the holder's lease; false when it held none.
	ReleaseQuota(ctx context.Context, p ReleaseQuotaParams) (bool, error)
	// QuotaStatus returns the definition, the counts and the live holders.
	QuotaStatus(ctx context.Context, p QuotaStatusParams) (QuotaStatus, error)
	// DeleteQuotaPolicy removes a policy; false when there was none.
	DeleteQuotaPolicy(ctx context.Context, p DeleteQuotaPolicyParams) (bool, error)
}

// Backend is everything a spendcap backend implements.
type Backend interface {
	Budgets
	Quotas
}

// QuotaReason is why AcquireQuota admitted or refused a holder.
type QuotaReason string

// Reasons of an acquisition.
const (
	// QuotaReasonOK: admitted, with a new lease.
	QuotaReasonOK QuotaReason = "ok"
	// QuotaReasonAlreadyHeld: admitted, the holder's live lease renewed.
	QuotaReasonAlreadyHeld QuotaReason = "already_held"
	// QuotaReasonRateLimited: refused, the window holds MaxRequests.
	QuotaReasonRateLimited QuotaReason = "rate_limited"
	// QuotaReasonConcurrencyLimited: refused, MaxConcurrent leases are live.
	QuotaReasonConcurrencyLimited QuotaReason = "concurrency_limited"
)

// CreateQuotaPolicyParams are the arguments of CreateQuotaPolicy. Zero means no limit for
// MaxRequests and MaxConcurrent; MaxRequests needs Window. Durations are whole seconds.
type CreateQuotaPolicyParams struct {
	PolicyID string
	// Window is the sliding window MaxRequests counts in.
	Window        time.Duration
	MaxRequests   int32
	MaxConcurrent int32
	// LeaseTTL is how long a lease lives unless renewed: 60 seconds by default.
	LeaseTTL time.Duration
	At       time.Time
}

// CreateQuotaPolicyResult is the result of CreateQuotaPolicy.
type CreateQuotaPolicyResult struct {
	PolicyID string
	Created  bool
}

// AcquireQuotaParams are the arguments of AcquireQuota.
type AcquireQuotaParams struct {
	PolicyID string
	HolderID string
	At       time.Time
	// AlsoPolicies are more policies the holder is admitted on with PolicyID, all or none
	// (docs/semantics.md#quota-sets).
	AlsoPolicies []string
}

// Acquired is the result of AcquireQuota; InWindow and Active are counted after the call.
type Acquired struct {
	Admitted bool
	Reason   QuotaReason
	// RetryAfter (whole milliseconds) is 0 unless refused.
	RetryAfter time.Duration
	InWindow   int64
	Active     int64
	// PolicyID is the policy the result is about: the refusing one, or the named one when admitted.
	PolicyID string
}

// RenewQuotaParams are the arguments of RenewQuota.
type RenewQuotaParams struct {
	PolicyID string
	HolderID string
	At       time.Time
	// AlsoPolicies are renewed too where the holder has a live lease; PolicyID must have one.
	AlsoPolicies []string
}

// ReleaseQuotaParams are the arguments of ReleaseQuota.
type ReleaseQuotaParams struct {
	PolicyID string
	HolderID string
	At       time.Time
	// AlsoPolicies are released too; the result is true when a live lease ended on any.
	AlsoPolicies []string
}

// QuotaStatusParams are the arguments of QuotaStatus.
type QuotaStatusParams struct {
	PolicyID string
	At       time.Time
}

// QuotaStatus is a policy's definition and state.
type QuotaStatus struct {
	PolicyID      string
	Window        time.Duration
	MaxRequests   int32
	MaxConcurrent int32
	LeaseTTL      time.Duration
	InWindow      int64
	Active        int64
	// Holders of live leases, in byte order.
	Holders []string
}

// DeleteQuotaPolicyParams are the arguments of DeleteQuotaPolicy.
type DeleteQuotaPolicyParams struct {
	PolicyID string
	At       time.Time
}

// QuotaLister pages through quota policies: the console's quotas screen. Both clients implement
// it.
type QuotaLister interface {
	// ListQuotaPolicies returns a page of the policies whose id starts with p.IDPrefix, in id
	// order (bytes), each with its window count and live leases at p.At (Holders left nil:
	// QuotaStatus lists them). Pass the page's Next as p.After; an empty Next means there is none.
	ListQuotaPolicies(ctx context.Context, p ListQuotaPoliciesParams) (QuotaPolicyPage, error)
}

// ListQuotaPoliciesParams are the arguments of ListQuotaPolicies.
type ListQuotaPoliciesParams struct {
	IDPrefix string
	// After is the Next of the previous page ("" for the first).
	After string
	// MaxRows bounds the page, 1..1000; 0 means 50.
	MaxRows int
	At      time.Time
}

// QuotaPolicyPage is a page of ListQuotaPolicies.
type QuotaPolicyPage struct {
	Policies []QuotaStatus
	// Next is the id to pass as After for the next page; empty when this page is the last.
	Next string
}
