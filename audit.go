package spendcap

import "encoding/json"

// AuditFinding is one aggregate that does not match the rows or keys it sums, as the audit
// reports it (docs/semantics.md#audit).
type AuditFinding struct {
	// BudgetID or PolicyID names what the finding is about (the other is empty); for an
	// orphan_* check, the id of a budget or policy that is gone.
	BudgetID string `json:"budget_id,omitempty"`
	PolicyID string `json:"policy_id,omitempty"`
	// Check is reserved, reservations_expire_at, ledger, parent, active, leases_expire_at,
	// in_window, window_oldest or orphan_<what>.
	Check string `json:"check"`
	// Dimension is set for the ledger check.
	Dimension string `json:"dimension,omitempty"`
	// Expected and Found are JSON values: what the rows say and what the aggregate holds.
	Expected json.RawMessage `json:"expected"`
	Found    json.RawMessage `json:"found"`
	// Repaired says the audit corrected it.
	Repaired bool `json:"repaired"`
}
