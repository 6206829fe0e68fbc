-- set_limits (docs/semantics.md#budgets): replaces each of hard_limits, soft_limits, mode, alert_percents and usage_series that is not
-- null, keeping usage and the window; the new limits apply from the next call. A usage_series
-- other than the budget's ("off": none) starts a new series and deletes the old one's buckets
-- (docs/semantics.md#usage-series). Returns the budget_status row.
-- Locks one budgets row and writes it (plus one budget_history row when the call rolls the window).
DROP FUNCTION IF EXISTS spendcap_internal.set_limits;
CREATE FUNCTION spendcap_internal.set_limits(
    budget_id   text,
    hard_limits jsonb       DEFAULT NULL,
    soft_limits jsonb       DEFAULT NULL,
    mode        text        DEFAULT NULL,
    at          timestamptz DEFAULT NULL,
    alert_percents integer[] DEFAULT NULL,
    usage_series text       DEFAULT NULL)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b    spendcap.budgets;
    t    timestamptz;
    hard jsonb;
    soft jsonb;
    bad  text;
    alerts integer[];
    series text;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    IF hard_limits IS NOT NULL THEN
        hard := spendcap_internal.quantities('hard_limits', hard_limits, false);
    END IF;
    IF soft_limits IS NOT NULL THEN
        soft := spendcap_internal.quantities('soft_limits', soft_limits, false);
    END IF;
    IF mode IS NOT NULL AND mode NOT IN ('enforce', 'observe') THEN
        PERFORM spendcap_internal.invalid_argument('mode', 'must be enforce or observe');
    END IF;
    -- Not null: replaces the percents; an empty array removes them.
    alerts := spendcap_internal.alert_percents_of('alert_percents', alert_percents);
    series := spendcap_internal.series_every_of('usage_series', usage_series, true);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.lock_budget(budget_id, t);
    t := greatest(t, b.window_start);
    b.hard_limits := coalesce(hard, b.hard_limits);
    b.soft_limits := coalesce(soft, b.soft_limits);
    b.mode := coalesce(mode, b.mode);
    IF alert_percents IS NOT NULL THEN
        b.alert_percents := alerts;
    END IF;
    SELECT s.key INTO bad FROM jsonb_each(b.soft_limits) AS s
     WHERE (b.hard_limits ->> s.key)::bigint < s.value::bigint ORDER BY s.key COLLATE "C" LIMIT 1;
    IF bad IS NOT NULL THEN
        -- Name the argument that was passed: with only new hard limits, they are what conflicts.
        PERFORM spendcap_internal.invalid_argument(CASE WHEN soft IS NULL THEN 'hard_limits' ELSE 'soft_limits' END,
            format('soft limit of %s must not exceed its hard limit', to_jsonb(bad)));
    END IF;
    IF series IS NOT NULL AND series IS DISTINCT FROM coalesce(b.series_every, 'off') THEN
        DELETE FROM spendcap.usage_series AS s WHERE s.budget_id = b.budget_id;
        b := spendcap_internal.series_started(b, nullif(series, 'off'), t);
    END IF;
    b.updated_at := greatest(b.updated_at, t);
    PERFORM spendcap_internal.save(b);
    RETURN spendcap_internal.status_row(b, t);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.set_limits FROM PUBLIC;
