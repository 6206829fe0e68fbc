-- budget_status (docs/semantics.md#reading-a-budget; docs/sql-api.md): every field of a budget as of `at`, with live reservations and the
-- remaining headroom per hard-limited dimension, rolled lazily without writing.
-- Locks and writes: nothing (reads one budgets row; the reservations only after one expired).
DROP FUNCTION IF EXISTS spendcap.budget_status;
CREATE FUNCTION spendcap.budget_status(
    budget_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
REVOKE ALL ON FUNCTION spendcap.budget_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.budget_status TO spendcap_reader;
