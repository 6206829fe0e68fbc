package spendcap

import (
	"encoding/json"
	"strings"
)

// AuditParams are the arguments of Audit.
type AuditParams struct {
	// Repair corrects what the audit finds, each under its budget's or policy's lock.
	Repair bool
	// BatchSize (PostgreSQL) bounds the findings of one call of the audit function, each call its
	// own transaction; 0 means 10000. Valkey audits one key per call and ignores it.
	BatchSize int
}

// AuditCheck names what an AuditFinding compared.
type AuditCheck string

// Checks of the audit (docs/semantics.md#audit).
const (
	// AuditCheckReserved: a budget's reserved against its live reservations.
	AuditCheckReserved AuditCheck = "reserved"
	// AuditCheckReservationsExpireAt: a budget's earliest reservation expiry against them.
	AuditCheckReservationsExpireAt AuditCheck = "reservations_expire_at"
	// AuditCheckLedger: a budget's spend ledger in one dimension against its usage.
	AuditCheckLedger AuditCheck = "ledger"
	// AuditCheckParent: a budget's parent exists.
	AuditCheckParent AuditCheck = "parent"
	// AuditCheckUtilisation: a budget's stored utilisation (what ListBudgets orders by) against
	// its usage, reservations and hard limits; on Valkey also its entry in the listing index.
	AuditCheckUtilisation AuditCheck = "utilisation"
	// AuditCheckActive: a policy's active count against its live leases.
	AuditCheckActive AuditCheck = "active"
	// AuditCheckLeasesExpireAt: a policy's earliest lease expiry against its leases.
	AuditCheckLeasesExpireAt AuditCheck = "leases_expire_at"
	// AuditCheckInWindow: a policy's in-window count against its window entries.
	AuditCheckInWindow AuditCheck = "in_window"
	// AuditCheckWindowOldest: a policy's oldest window entry against them.
	AuditCheckWindowOldest AuditCheck = "window_oldest"
)

// Orphan says whether c is an orphan_* check: rows or keys of a budget or policy that is gone.
func (c AuditCheck) Orphan() bool { return strings.HasPrefix(string(c), "orphan_") }

// AuditFinding is one aggregate that does not match the rows or keys it sums, as the audit
// reports it (docs/semantics.md#audit).
type AuditFinding struct {
	// BudgetID or PolicyID names what the finding is about (the other is empty); for an
	// orphan_* check, the id of a budget or policy that is gone.
	BudgetID string `json:"budget_id,omitempty"`
	PolicyID string `json:"policy_id,omitempty"`
	// Check is one of the AuditCheck constants, or "orphan_" and what the gone budget or policy
	// left: a table on PostgreSQL, a key suffix on Valkey (AuditCheck.Orphan).
	Check AuditCheck `json:"check"`
	// Dimension is set for the ledger check.
	Dimension string `json:"dimension,omitempty"`
	// Expected and Found are JSON values: what the rows say and what the aggregate holds.
	Expected json.RawMessage `json:"expected"`
	Found    json.RawMessage `json:"found"`
	// Repaired says the audit corrected it.
	Repaired bool `json:"repaired"`
}
