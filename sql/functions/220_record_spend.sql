-- record_spend (docs/semantics.md#spend-and-reservations): report_usage for an execution; applied deltas are also added to the
-- execution's ledger, tagged with the current window, so that release_spend can undo them.
-- Locks one budgets row. Writes the budgets row, one spend_ledger row when applied, and one
-- dedup_keys row with a key (plus one budget_history row when the call rolls the window).
DROP FUNCTION IF EXISTS spendcap_internal.record_spend;
CREATE FUNCTION spendcap_internal.record_spend(
    budget_id       text,
    execution_id    text,
    deltas          jsonb,
    idempotency_key text        DEFAULT NULL,
    at              timestamptz DEFAULT NULL,
    also_charge     text[]      DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    RETURN spendcap_internal.usage_outcome(spendcap_internal.admit('record_spend', budget_id, execution_id, deltas, idempotency_key, NULL, at, also_charge));
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.record_spend FROM PUBLIC;
