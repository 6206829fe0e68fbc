-- roll_due_windows (docs/semantics.md#jobs, job): rolls up to max_rows budgets whose window is due at `at`
-- (closed_by = 'schedule'), skipping budgets another transaction holds, and returns how many it
-- rolled. Idempotent and safe on several workers at once; never needed for correctness, since every
-- call rolls lazily. Locks and writes up to max_rows budgets rows and as many history rows.
DROP FUNCTION IF EXISTS spendcap_internal.roll_due_windows;
CREATE FUNCTION spendcap_internal.roll_due_windows(
    max_rows integer     DEFAULT 1000,
    at       timestamptz DEFAULT NULL)
RETURNS spendcap.roll_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t      timestamptz;
    b      spendcap.budgets;
    rolled spendcap.budgets;
    r      spendcap.roll_result;
BEGIN
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 100000);
    t := spendcap_internal.instant(at);
    r.rolled := 0;
    FOR b IN
        SELECT * FROM spendcap.budgets AS x
         WHERE x.next_reset_at <= t
         ORDER BY x.next_reset_at
         LIMIT max_rows
           FOR NO KEY UPDATE SKIP LOCKED
    LOOP
        rolled := spendcap_internal.advanced(b, t);
        PERFORM spendcap_internal.close_window(b, b.next_reset_at, 'schedule', t);
        PERFORM spendcap_internal.save(rolled);
        r.rolled := r.rolled + 1;
    END LOOP;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.roll_due_windows FROM PUBLIC;
