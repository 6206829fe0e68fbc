-- reset_budget (docs/semantics.md#windows): manual reset. Closes the current window into history now
-- (closed_by = 'manual', unless it had no usage and no breaches), clears usage and the window
-- counters, increments window_seq and starts the new window at `at`; the schedule is kept
-- (next_reset_at unchanged). Reservations, dedup keys and the ledger survive; ledger amounts of the
-- closed window are never released from the new one.
-- Locks one budgets row. Writes it and at most two budget_history rows (a due scheduled roll, then
-- the manual one).
DROP FUNCTION IF EXISTS spendcap_internal.reset_budget;
CREATE FUNCTION spendcap_internal.reset_budget(
    budget_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.reset_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
    r spendcap.reset_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.lock_budget(budget_id, t);
    t := greatest(t, b.window_start);
    PERFORM spendcap_internal.close_window(b, t, 'manual', t);
    b.window_seq := b.window_seq + 1;
    b.window_start := t;
    b := spendcap_internal.usage_cleared(b);
    b.window_breach_count := 0;
    b.window_soft_breach_count := 0;
    b.last_breach_at := NULL;
    b.last_breach_dim := NULL;
    b.updated_at := greatest(b.updated_at, t);
    PERFORM spendcap_internal.save(b);
    r := (b.window_seq, b.window_start, b.next_reset_at);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.reset_budget FROM PUBLIC;
