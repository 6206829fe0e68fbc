-- Budget sets (docs/semantics.md#budget-sets): a budget may name a parent, and a charge to a budget
-- counts on its parent's chain too. parent_id has no foreign key, like the child tables (the SQL
-- functions are its only writers): create_budget and set_parent lock the parent row, and
-- delete_budget refuses a budget with children, so no parent disappears under a child.
ALTER TABLE spendcap.budgets ADD COLUMN parent_id text;

-- delete_budget and set_parent look for children without a scan.
CREATE INDEX budgets_parent_id_idx ON spendcap.budgets (parent_id) WHERE parent_id IS NOT NULL;

ALTER TYPE spendcap.budget_status_result ADD ATTRIBUTE parent_id text;
COMMENT ON COLUMN spendcap.budget_status_result.parent_id IS 'nullable: null for a budget without a parent';

-- A charge to a set records its ledger entries and reservation rows on every budget of the set,
-- under the budget the call named (named_id): release_spend, settle and cancel_reservation find the
-- whole set from the named budget, and two sets that share a member never mix their ids.
ALTER TABLE spendcap.spend_ledger ADD COLUMN named_id text;
UPDATE spendcap.spend_ledger SET named_id = budget_id;
ALTER TABLE spendcap.spend_ledger ALTER COLUMN named_id SET NOT NULL,
    DROP CONSTRAINT spend_ledger_pkey,
    ADD CONSTRAINT spend_ledger_pkey PRIMARY KEY (named_id, execution_id, budget_id, window_seq);
CREATE INDEX spend_ledger_budget_id_idx ON spendcap.spend_ledger (budget_id);

ALTER TABLE spendcap.reservations ADD COLUMN named_id text;
UPDATE spendcap.reservations SET named_id = budget_id;
ALTER TABLE spendcap.reservations ALTER COLUMN named_id SET NOT NULL,
    DROP CONSTRAINT reservations_pkey,
    ADD CONSTRAINT reservations_pkey PRIMARY KEY (named_id, reservation_id, budget_id);
CREATE INDEX reservations_budget_id_idx ON spendcap.reservations (budget_id, expires_at);

-- The budget of the reported breach, for a charge to a set (null for ok).
ALTER TYPE spendcap.usage_outcome ADD ATTRIBUTE breach_budget_id text;
ALTER TYPE spendcap.reserve_outcome ADD ATTRIBUTE breach_budget_id text;
COMMENT ON COLUMN spendcap.usage_outcome.breach_budget_id IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.reserve_outcome.breach_budget_id IS 'nullable: null for ok';

-- Quota sets: an acquire over several policies reports the policy of its outcome.
ALTER TYPE spendcap.acquire_result ADD ATTRIBUTE policy_id text;
