-- Documents the result columns that may be null. Composite type attributes carry no NOT NULL, so
-- the binding generator reads these comments: a comment starting with "nullable" makes the Go field
-- a pointer; every other column is never null.
COMMENT ON COLUMN spendcap.create_budget_result.next_reset_at IS 'nullable: null when the budget has no reset period';

COMMENT ON COLUMN spendcap.budget_status_result.reset_every IS 'nullable: null when the budget has one window forever';
COMMENT ON COLUMN spendcap.budget_status_result.reset_anchor IS 'nullable: null without reset_every';
COMMENT ON COLUMN spendcap.budget_status_result.scope_type IS 'nullable: free text, null when not given';
COMMENT ON COLUMN spendcap.budget_status_result.scope_id IS 'nullable: free text, null when not given';
COMMENT ON COLUMN spendcap.budget_status_result.next_reset_at IS 'nullable: null when the budget has no reset period';
COMMENT ON COLUMN spendcap.budget_status_result.last_breach_at IS 'nullable: null until a hard breach in this window';
COMMENT ON COLUMN spendcap.budget_status_result.last_breach_dim IS 'nullable: null until a hard breach in this window';

COMMENT ON COLUMN spendcap.usage_outcome.dimension IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.usage_outcome.usage IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.usage_outcome.limit_value IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.usage_outcome.next_reset_at IS 'nullable: null when the budget has no reset period';

COMMENT ON COLUMN spendcap.reserve_outcome.dimension IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.reserve_outcome.usage IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.reserve_outcome.limit_value IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.reserve_outcome.next_reset_at IS 'nullable: null when the budget has no reset period';
COMMENT ON COLUMN spendcap.reserve_outcome.expires_at IS 'nullable: null when the reservation was refused';

COMMENT ON COLUMN spendcap.reset_result.next_reset_at IS 'nullable: null when the budget has no reset period';
