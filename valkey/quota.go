package valkey

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
)

var _ spendcap.Backend = (*Client)(nil)

// PolicyKey returns the base key of a quota policy (docs/semantics.md#valkey): sc:q:{id}, or
// sc:q:{g}/rest for an id g/rest.
func PolicyKey(policyID string) string { return baseKey("sc:q:", policyID) }

func (c *Client) quotaCall(ctx context.Context, name, policyID string, a args, readonly bool, out any) error {
	return c.callKey(ctx, name, PolicyKey(policyID), a, readonly, out)
}

// policySetCall runs FCALL sc_<name> on policyID and the policies of also, passing every
// policy's key (docs/semantics.md#quota-sets); on a cluster, a set across slots is SC002.
func (c *Client) policySetCall(ctx context.Context, name, policyID string, also []string, a args, out any) error {
	if len(also) == 0 {
		return c.quotaCall(ctx, name, policyID, a, false, out)
	}
	a["also_policies"] = also
	keys := []string{PolicyKey(policyID)}
	for _, id := range also {
		keys = append(keys, PolicyKey(id))
	}
	err := c.callKeys(ctx, name, keys, a, false, out)
	if isCrossSlot(err) {
		return &spendcap.Error{Code: "SC002", Cause: err, Message: fmt.Sprintf(
			"also_policies: the policies %s span cluster slots: on a cluster, the policies of a set must share the first '/' segment of their ids",
			strings.Join(append([]string{policyID}, also...), ", "))}
	}
	return err
}

// CreateQuotaPolicy implements spendcap.Quotas.
func (c *Client) CreateQuotaPolicy(ctx context.Context, p spendcap.CreateQuotaPolicyParams) (spendcap.CreateQuotaPolicyResult, error) {
	window, lease, err := callargs.QuotaPolicy(p)
	if err != nil {
		return spendcap.CreateQuotaPolicyResult{}, err
	}
	var r struct {
		PolicyID string `json:"policy_id"`
		Created  bool   `json:"created"`
	}
	a := args{"policy_id": p.PolicyID, "window_seconds": window, "max_requests": p.MaxRequests,
		"max_concurrent": p.MaxConcurrent}.num("lease_seconds", lease).at(p.At)
	err = c.quotaCall(ctx, "create_quota_policy", p.PolicyID, a, false, &r)
	return spendcap.CreateQuotaPolicyResult{PolicyID: r.PolicyID, Created: r.Created}, err
}

// AcquireQuota implements spendcap.Quotas.
func (c *Client) AcquireQuota(ctx context.Context, p spendcap.AcquireQuotaParams) (spendcap.Acquired, error) {
	var r struct {
		Admitted     bool   `json:"admitted"`
		Reason       string `json:"reason"`
		RetryAfterMS int64  `json:"retry_after_ms"`
		InWindow     int64  `json:"in_window"`
		Active       int64  `json:"active"`
		PolicyID     string `json:"policy_id"`
	}
	err := c.policySetCall(ctx, "acquire_quota", p.PolicyID, p.AlsoPolicies, args{"policy_id": p.PolicyID, "holder_id": p.HolderID}.at(p.At), &r)
	return spendcap.Acquired{Admitted: r.Admitted, Reason: spendcap.QuotaReason(r.Reason), RetryAfter: time.Duration(r.RetryAfterMS) * time.Millisecond,
		InWindow: r.InWindow, Active: r.Active, PolicyID: r.PolicyID}, err
}

// RenewQuota implements spendcap.Quotas.
func (c *Client) RenewQuota(ctx context.Context, p spendcap.RenewQuotaParams) (time.Time, error) {
	var r struct {
		ExpiresAt *int64 `json:"expires_at"`
	}
	err := c.policySetCall(ctx, "renew_quota", p.PolicyID, p.AlsoPolicies, args{"policy_id": p.PolicyID, "holder_id": p.HolderID}.at(p.At), &r)
	return toTime(r.ExpiresAt), err
}

// ReleaseQuota implements spendcap.Quotas.
func (c *Client) ReleaseQuota(ctx context.Context, p spendcap.ReleaseQuotaParams) (bool, error) {
	var r struct {
		Released bool `json:"released"`
	}
	err := c.policySetCall(ctx, "release_quota", p.PolicyID, p.AlsoPolicies, args{"policy_id": p.PolicyID, "holder_id": p.HolderID}.at(p.At), &r)
	return r.Released, err
}

// QuotaStatus implements spendcap.Quotas.
func (c *Client) QuotaStatus(ctx context.Context, p spendcap.QuotaStatusParams) (spendcap.QuotaStatus, error) {
	var r policyReply
	if err := c.quotaCall(ctx, "quota_status", p.PolicyID, args{"policy_id": p.PolicyID}.at(p.At), true, &r); err != nil {
		return spendcap.QuotaStatus{}, err
	}
	if r.Holders == nil {
		r.Holders = []string{}
	}
	return r.api(), nil
}

// policyReply is a policy as sc_quota_status and sc_list_quota_policies answer it (the listing
// without holders).
type policyReply struct {
	PolicyID      string   `json:"policy_id"`
	WindowSeconds int32    `json:"window_seconds"`
	MaxRequests   int32    `json:"max_requests"`
	MaxConcurrent int32    `json:"max_concurrent"`
	LeaseSeconds  int32    `json:"lease_seconds"`
	InWindow      int64    `json:"in_window"`
	Active        int64    `json:"active"`
	Holders       []string `json:"holders"`
}

func (r policyReply) api() spendcap.QuotaStatus {
	return spendcap.QuotaStatus{PolicyID: r.PolicyID, Window: time.Duration(r.WindowSeconds) * time.Second, MaxRequests: r.MaxRequests,
		MaxConcurrent: r.MaxConcurrent, LeaseTTL: time.Duration(r.LeaseSeconds) * time.Second, InWindow: r.InWindow, Active: r.Active, Holders: r.Holders}
}

// DeleteQuotaPolicy implements spendcap.Quotas.
func (c *Client) DeleteQuotaPolicy(ctx context.Context, p spendcap.DeleteQuotaPolicyParams) (bool, error) {
	var r struct {
		Deleted bool `json:"deleted"`
	}
	err := c.quotaCall(ctx, "delete_quota_policy", p.PolicyID, args{"policy_id": p.PolicyID}.at(p.At), false, &r)
	return r.Deleted, err
}

var _ spendcap.QuotaLister = (*Client)(nil)

// policyIndex is the listing index of policies on one server; a cluster has one per slot,
// policyIndex's prefix then ":{<tag>}:q".
const policyIndex = indexPrefix + ":q"

// ListQuotaPolicies implements spendcap.QuotaLister with sc_list_quota_policies, on a cluster on
// every slot's index (found by a SCAN of each primary), their pages merged in id order.
func (c *Client) ListQuotaPolicies(ctx context.Context, p spendcap.ListQuotaPoliciesParams) (spendcap.QuotaPolicyPage, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return spendcap.QuotaPolicyPage{}, err
	}
	a := args{}.str("id_prefix", p.IDPrefix).str("after", p.After).num("max_rows", maxRows).at(p.At)
	indexes := []string{policyIndex}
	if _, cluster := c.rdb.(*redis.ClusterClient); cluster {
		if indexes, err = c.slotKeys(ctx, ":q"); err != nil {
			return spendcap.QuotaPolicyPage{}, err
		}
		if len(indexes) == 0 {
			// No policy anywhere: slot 0's empty index still checks the arguments.
			indexes = []string{indexPrefix + ":{" + slotTags()[0] + "}:q"}
		}
	}
	var rows []spendcap.QuotaStatus
	for _, ix := range indexes {
		var rs []policyReply
		if err := c.callKeys(ctx, "list_quota_policies", []string{ix}, a, true, &rs); err != nil {
			return spendcap.QuotaPolicyPage{}, err
		}
		for _, r := range rs {
			rows = append(rows, r.api())
		}
	}
	want := int(cmp.Or(maxRows, callargs.DefaultListRows))
	if len(indexes) > 1 {
		slices.SortFunc(rows, func(a, b spendcap.QuotaStatus) int { return strings.Compare(a.PolicyID, b.PolicyID) })
		rows = rows[:min(len(rows), want)]
	}
	return spendcap.QuotaPolicyPage{Policies: rows, Next: callargs.NextPolicy(rows, int32(want))}, nil
}
