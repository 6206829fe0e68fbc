-- check_usage (docs/semantics.md#admission): the outcome report_usage would have, without writing anything (breach
-- counters included). Locks and writes nothing; reads one budgets row (and its reservations only
-- after one of them expired).
DROP FUNCTION IF EXISTS spendcap.check_usage;
CREATE FUNCTION spendcap.check_usage(
    budget_id text,
    deltas    jsonb,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
    d jsonb;
    e record;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    d := spendcap_internal.quantities('deltas', deltas, true);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.read_budget(budget_id);
    t := greatest(t, b.window_start);
    b := spendcap_internal.advanced(b, t);
    e := spendcap_internal.evaluate(b, spendcap_internal.live_reserved(b, t), d, 'deltas', false);
    RETURN spendcap_internal.usage_outcome(e.o);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.check_usage FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.check_usage TO spendcap_reader;
