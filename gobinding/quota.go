package gobinding

import (
	"context"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/pgfn"
)

var _ spendcap.Backend = (*Client)(nil)

// CreateQuotaPolicy implements spendcap.Quotas.
func (c *Client) CreateQuotaPolicy(ctx context.Context, p spendcap.CreateQuotaPolicyParams) (spendcap.CreateQuotaPolicyResult, error) {
	window, lease, err := callargs.QuotaPolicy(p)
	if err != nil {
		return spendcap.CreateQuotaPolicyResult{}, err
	}
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CreateQuotaPolicyRow, error) {
		return q.CreateQuotaPolicy(ctx, pgfn.CreateQuotaPolicyParams{PolicyID: p.PolicyID, WindowSeconds: &window,
			MaxRequests: &p.MaxRequests, MaxConcurrent: &p.MaxConcurrent, LeaseSeconds: nonZero(lease), At: at(p.At)})
	})
	return spendcap.CreateQuotaPolicyResult{PolicyID: r.PolicyID, Created: r.Created}, err
}

// AcquireQuota implements spendcap.Quotas.
func (c *Client) AcquireQuota(ctx context.Context, p spendcap.AcquireQuotaParams) (spendcap.Acquired, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.AcquireQuotaRow, error) {
		return q.AcquireQuota(ctx, pgfn.AcquireQuotaParams{PolicyID: p.PolicyID, HolderID: p.HolderID, At: at(p.At), AlsoPolicies: p.AlsoPolicies})
	})
	return spendcap.Acquired{Admitted: r.Admitted, Reason: spendcap.QuotaReason(r.Reason), RetryAfter: time.Duration(r.RetryAfterMS) * time.Millisecond,
		InWindow: r.InWindow, Active: r.Active, PolicyID: r.PolicyID}, err
}

// RenewQuota implements spendcap.Quotas.
func (c *Client) RenewQuota(ctx context.Context, p spendcap.RenewQuotaParams) (time.Time, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.RenewQuotaRow, error) {
		return q.RenewQuota(ctx, pgfn.RenewQuotaParams{PolicyID: p.PolicyID, HolderID: p.HolderID, At: at(p.At), AlsoPolicies: p.AlsoPolicies})
	})
	return r.ExpiresAt, err
}

// ReleaseQuota implements spendcap.Quotas.
func (c *Client) ReleaseQuota(ctx context.Context, p spendcap.ReleaseQuotaParams) (bool, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.ReleaseQuotaRow, error) {
		return q.ReleaseQuota(ctx, pgfn.ReleaseQuotaParams{PolicyID: p.PolicyID, HolderID: p.HolderID, At: at(p.At), AlsoPolicies: p.AlsoPolicies})
	})
	return r.Released, err
}

// QuotaStatus implements spendcap.Quotas.
func (c *Client) QuotaStatus(ctx context.Context, p spendcap.QuotaStatusParams) (spendcap.QuotaStatus, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.QuotaStatusRow, error) {
		return q.QuotaStatus(ctx, pgfn.QuotaStatusParams{PolicyID: p.PolicyID, At: at(p.At)})
	})
	return spendcap.QuotaStatus{PolicyID: r.PolicyID, Window: time.Duration(r.WindowSeconds) * time.Second, MaxRequests: r.MaxRequests,
		MaxConcurrent: r.MaxConcurrent, LeaseTTL: time.Duration(r.LeaseSeconds) * time.Second, InWindow: r.InWindow, Active: r.Active, Holders: r.Holders}, err
}

// DeleteQuotaPolicy implements spendcap.Quotas.
func (c *Client) DeleteQuotaPolicy(ctx context.Context, p spendcap.DeleteQuotaPolicyParams) (bool, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.DeleteQuotaPolicyRow, error) {
		return q.DeleteQuotaPolicy(ctx, pgfn.DeleteQuotaPolicyParams{PolicyID: p.PolicyID, At: at(p.At)})
	})
	return r.Deleted, err
}

var _ spendcap.QuotaLister = (*Client)(nil)

// ListQuotaPolicies implements spendcap.QuotaLister.
func (c *Client) ListQuotaPolicies(ctx context.Context, p spendcap.ListQuotaPoliciesParams) (spendcap.QuotaPolicyPage, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return spendcap.QuotaPolicyPage{}, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.ListQuotaPoliciesRow, error) {
		return q.ListQuotaPolicies(ctx, pgfn.ListQuotaPoliciesParams{IDPrefix: nonEmpty(p.IDPrefix), After: nonEmpty(p.After),
			MaxRows: nonZero(maxRows), At: at(p.At)})
	})
	if err != nil {
		return spendcap.QuotaPolicyPage{}, err
	}
	out := make([]spendcap.QuotaStatus, len(rows))
	for i, r := range rows {
		out[i] = spendcap.QuotaStatus{PolicyID: r.PolicyID, Window: time.Duration(r.WindowSeconds) * time.Second, MaxRequests: r.MaxRequests,
			MaxConcurrent: r.MaxConcurrent, LeaseTTL: time.Duration(r.LeaseSeconds) * time.Second, InWindow: r.InWindow, Active: r.Active}
	}
	return spendcap.QuotaPolicyPage{Policies: out, Next: callargs.NextPolicy(out, maxRows)}, nil
}
