-- usage_series (docs/semantics.md#usage-series): the budget's usage per hour or per day, newest
-- first, at most max_rows (1..1000): the running bucket (the one holding `at`, whatever it
-- counted so far, {} included), then the closed buckets that counted usage and started within the
-- series' retention before `at` (7 days of hours, 90 days of days). A bucket that ended by `at`
-- but is not closed yet is shown closed, as the next call will close it: the result never
-- depends on when the budget was last written. No rows for a budget without a series. Locks and
-- writes nothing.
DROP FUNCTION IF EXISTS spendcap_internal.usage_series;
CREATE FUNCTION spendcap_internal.usage_series(
    budget_id text,
    max_rows  integer     DEFAULT 200,
    at        timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.series_row
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b      spendcap.budgets;
    now_b  spendcap.budgets;
    t      timestamptz;
    n      integer := coalesce(max_rows, 200);
    cutoff timestamptz;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.bounded('max_rows', n, 1, 1000);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.read_budget(budget_id);
    IF b.series_every IS NULL THEN
        RETURN;
    END IF;
    t := greatest(t, b.window_start);
    now_b := spendcap_internal.advanced(b, t);
    cutoff := t - spendcap_internal.series_kept(b.series_every);
    RETURN NEXT (now_b.series_start, now_b.series_next_at, spendcap_internal.bucket_usage(now_b))::spendcap.series_row;
    n := n - 1;
    IF n > 0 AND now_b.series_start <> b.series_start AND b.series_start >= cutoff
       AND spendcap_internal.bucket_usage(b) <> '{}' THEN
        RETURN NEXT (b.series_start, b.series_next_at, spendcap_internal.bucket_usage(b))::spendcap.series_row;
        n := n - 1;
    END IF;
    RETURN QUERY
        SELECT s.bucket_start, s.bucket_end, s.usage
          FROM spendcap.usage_series AS s
         WHERE s.budget_id = budget_id AND s.bucket_start >= cutoff
         ORDER BY s.bucket_start DESC
         LIMIT n;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.usage_series FROM PUBLIC;
