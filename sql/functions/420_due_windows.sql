-- due_windows (job metrics): how many budgets have a window due at `at` that no call or job has
-- rolled yet — the backlog of roll_due_windows. Locks and writes nothing; reads the partial index
-- on next_reset_at.
DROP FUNCTION IF EXISTS spendcap_internal.due_windows;
CREATE FUNCTION spendcap_internal.due_windows(
    at timestamptz DEFAULT NULL)
RETURNS spendcap.backlog_result
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    -- Computed once, so that the comparison below is with a constant and uses the index.
    t timestamptz := spendcap_internal.instant(at);
BEGIN
    RETURN (SELECT ROW(count(*))::spendcap.backlog_result
          FROM spendcap.budgets AS b
         WHERE b.next_reset_at <= t);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.due_windows FROM PUBLIC;
