ALTER TYPE spendcap.acquire_result DROP ATTRIBUTE policy_id;
ALTER TYPE spendcap.reserve_outcome DROP ATTRIBUTE breach_budget_id;
ALTER TYPE spendcap.usage_outcome DROP ATTRIBUTE breach_budget_id;
DROP INDEX spendcap.reservations_budget_id_idx;
ALTER TABLE spendcap.reservations DROP CONSTRAINT reservations_pkey,
    ADD CONSTRAINT reservations_pkey PRIMARY KEY (budget_id, reservation_id), DROP COLUMN named_id;
DROP INDEX spendcap.spend_ledger_budget_id_idx;
ALTER TABLE spendcap.spend_ledger DROP CONSTRAINT spend_ledger_pkey,
    ADD CONSTRAINT spend_ledger_pkey PRIMARY KEY (budget_id, execution_id, window_seq), DROP COLUMN named_id;
ALTER TYPE spendcap.budget_status_result DROP ATTRIBUTE parent_id;
DROP INDEX spendcap.budgets_parent_id_idx;
ALTER TABLE spendcap.budgets DROP COLUMN parent_id;
