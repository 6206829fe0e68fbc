-- report_usage (SPEC §5, §6): admits deltas into the budget's current window. With a dedup_key, a
-- repeat with the same deltas replays the stored outcome; other deltas raise SC003.
-- Locks one budgets row. Writes the budgets row, and one dedup_keys row with a key (plus one
-- budget_history row when the call rolls the window).
DROP FUNCTION IF EXISTS spendcap.report_usage;
CREATE FUNCTION spendcap.report_usage(
    budget_id text,
    deltas    jsonb,
    dedup_key text        DEFAULT NULL,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN spendcap_internal.usage_outcome(spendcap_internal.admit('report_usage', budget_id, NULL, deltas, dedup_key, NULL, at));
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.report_usage FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.report_usage TO spendcap_writer;
