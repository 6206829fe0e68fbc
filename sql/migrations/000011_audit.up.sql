-- The audit (docs/semantics.md#audit): one row per aggregate that does not match the rows it sums.
CREATE TYPE spendcap.audit_finding AS (
    budget_id  text,
    policy_id  text,
    check_name text,
    dimension  text,
    expected   text,
    found      text,
    repaired   boolean
);
COMMENT ON COLUMN spendcap.audit_finding.budget_id IS 'nullable: null for a finding of a quota policy';
COMMENT ON COLUMN spendcap.audit_finding.policy_id IS 'nullable: null for a finding of a budget';
COMMENT ON COLUMN spendcap.audit_finding.dimension IS 'nullable: set for the ledger check only';
COMMENT ON COLUMN spendcap.audit_finding.expected IS 'nullable: JSON text; null when no value is expected';
COMMENT ON COLUMN spendcap.audit_finding.found IS 'nullable: JSON text; null when nothing is stored';
