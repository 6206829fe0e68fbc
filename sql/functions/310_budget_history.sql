-- budget_history (docs/semantics.md#reading-a-budget): closed windows, newest first, at most max_rows (1..10000). A window that
-- is due at `at` but not rolled yet is shown as closed by the schedule, as it will be: the result
-- never depends on when the roll job last ran. Locks and writes nothing.
DROP FUNCTION IF EXISTS spendcap_internal.budget_history;
CREATE FUNCTION spendcap_internal.budget_history(
    budget_id text,
    max_rows  integer     DEFAULT 100,
    at        timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.history_row
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
    n integer := coalesce(max_rows, 100);
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.bounded('max_rows', n, 1, 10000);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.read_budget(budget_id);
    t := greatest(t, b.window_start);
    IF b.next_reset_at <= t AND (b.usage <> '{}' OR b.window_breach_count > 0 OR b.window_soft_breach_count > 0) THEN
        RETURN NEXT (b.window_seq, b.window_start, b.next_reset_at, b.usage,
                     b.window_breach_count, b.window_soft_breach_count, 'schedule')::spendcap.history_row;
        n := n - 1;
    END IF;
    RETURN QUERY
        SELECT h.window_seq, h.window_start, h.window_end, h.usage, h.breach_count, h.soft_breach_count, h.closed_by
          FROM spendcap.budget_history AS h
         WHERE h.budget_id = budget_id
         ORDER BY h.window_seq DESC
         LIMIT n;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.budget_history FROM PUBLIC;
