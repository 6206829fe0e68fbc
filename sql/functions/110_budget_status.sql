-- budget_status (docs/semantics.md#reading-a-budget; docs/sql-api.md): every field of a budget as of `at`, with live reservations and the
-- remaining headroom per hard-limited dimension, rolled lazily without writing.
-- Locks and writes: nothing (reads one budgets row; the reservations only after one expired).
DROP FUNCTION IF EXISTS spendcap_internal.budget_status;
CREATE FUNCTION spendcap_internal.budget_status(
    budget_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.read_budget(budget_id);
    t := greatest(t, b.window_start);
    RETURN spendcap_internal.status_row(spendcap_internal.advanced(b, t), t);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.budget_status FROM PUBLIC;
