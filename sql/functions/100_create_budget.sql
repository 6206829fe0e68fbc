-- create_budget (docs/semantics.md#budgets; docs/sql-api.md): creates a budget, or returns created = false when one with an
-- identical definition exists (SC005 when the definition differs). if_exists says what to do with
-- an existing budget: 'error' (that rule), 'keep' (leave it as it is) or 'update' (make it match
-- through set_parent and set_limits; SC005 when what they cannot change differs). Null optional
-- arguments take their defaults. Locks and writes: one budgets row (inserted); none when the
-- budget exists, unless 'update' changes it (then what set_parent and set_limits lock and write).
DROP FUNCTION IF EXISTS spendcap_internal.create_budget;
CREATE FUNCTION spendcap_internal.create_budget(
    budget_id         text,
    hard_limits       jsonb       DEFAULT '{}',
    soft_limits       jsonb       DEFAULT '{}',
    reset_every       text        DEFAULT NULL,
    reset_timezone    text        DEFAULT 'UTC',
    reset_anchor      timestamptz DEFAULT NULL,
    mode              text        DEFAULT 'enforce',
    scope_type        text        DEFAULT NULL,
    scope_id          text        DEFAULT NULL,
    dedup_ttl_seconds integer     DEFAULT 86400,
    at                timestamptz DEFAULT NULL,
    parent_id         text        DEFAULT NULL,
    alert_percents    integer[]   DEFAULT NULL,
    usage_series      text        DEFAULT NULL,
    if_exists         text        DEFAULT 'error')
RETURNS spendcap.create_budget_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t       timestamptz;
    hard    jsonb;
    soft    jsonb;
    tz      text := coalesce(reset_timezone, 'UTC');
    md      text := coalesce(mode, 'enforce');
    ttl     integer := coalesce(dedup_ttl_seconds, 86400);
    every   text;     -- canonical reset_every
    n       integer;
    unit    text;
    anchor  timestamptz;
    alerts  integer[] := spendcap_internal.alert_percents_of('alert_percents', alert_percents);
    series  text := spendcap_internal.series_every_of('usage_series', usage_series, false);
    exists_rule text := coalesce(if_exists, 'error');
    w       record;
    b       spendcap.budgets;
    r       spendcap.create_budget_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    hard := spendcap_internal.quantities('hard_limits', coalesce(hard_limits, '{}'), false);
    soft := spendcap_internal.quantities('soft_limits', coalesce(soft_limits, '{}'), false);
    IF EXISTS (SELECT 1 FROM jsonb_each(soft) s
               WHERE (hard ->> s.key)::bigint < s.value::bigint) THEN
        PERFORM spendcap_internal.invalid_argument('soft_limits', format('%s must not exceed its hard limit',
            (SELECT to_jsonb(s.key) FROM jsonb_each(soft) s
             WHERE (hard ->> s.key)::bigint < s.value::bigint ORDER BY s.key LIMIT 1)));
    END IF;
    IF reset_every IS NOT NULL THEN
        SELECT pp.n, pp.unit, pp.canonical INTO n, unit, every FROM spendcap_internal.parse_period(reset_every) AS pp;
    ELSIF reset_anchor IS NOT NULL THEN
        PERFORM spendcap_internal.invalid_argument('reset_anchor', 'requires reset_every');
    END IF;
    PERFORM spendcap_internal.known_timezone(tz);
    IF md NOT IN ('enforce', 'observe') THEN
        PERFORM spendcap_internal.invalid_argument('mode', 'must be enforce or observe');
    END IF;
    PERFORM spendcap_internal.bounded('dedup_ttl_seconds', ttl, 1, 2592000);
    IF exists_rule NOT IN ('error', 'keep', 'update') THEN
        PERFORM spendcap_internal.invalid_argument('if_exists', 'must be error, keep or update');
    END IF;
    IF NOT coalesce(spendcap_internal.in_time_range(reset_anchor), true) THEN
        PERFORM spendcap_internal.invalid_argument('reset_anchor', 'must be from 1970-01-01 to 9999-12-31 UTC');
    END IF;
    t := spendcap_internal.instant(at);
    IF parent_id IS NOT NULL THEN
        PERFORM spendcap_internal.lock_parent(parent_id, budget_id);
    END IF;

    b.budget_id := budget_id;
    b.parent_id := parent_id;
    b.hard_limits := hard;
    b.soft_limits := soft;
    b.reset_timezone := tz;
    b.mode := md;
    b.scope_type := scope_type;
    b.scope_id := scope_id;
    b.dedup_ttl_seconds := ttl;
    b.alert_percents := alerts;
    b.created_at := t;
    b.updated_at := t;
    b.window_seq := 1;
    b.usage := '{}';
    b.reserved := '{}';
    b.breach_count := 0;
    b.soft_breach_count := 0;
    b.window_breach_count := 0;
    b.window_soft_breach_count := 0;
    IF every IS NULL THEN
        b.window_k := -1;
        b.window_start := t;
    ELSE
        anchor := coalesce(reset_anchor, spendcap_internal.default_anchor(t, unit, tz));
        w := spendcap_internal.window_of(anchor, n, unit, tz, t, t);
        b.reset_every := every;
        b.reset_n := n;
        b.reset_unit := unit;
        b.reset_anchor := anchor;
        b.window_k := w.k;
        b.window_start := w.window_start;
        b.next_reset_at := w.next_reset_at;
    END IF;
    b := spendcap_internal.series_started(b, series, t);

    b.utilisation_permille := spendcap_internal.utilisation(b.hard_limits, b.usage, b.reserved);
    INSERT INTO spendcap.budgets SELECT b.* ON CONFLICT DO NOTHING;
    IF FOUND THEN
        r := (b.budget_id, true, b.window_start, b.next_reset_at);
        RETURN r;
    END IF;

    SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = create_budget.budget_id;
    IF exists_rule = 'keep' THEN
        b := spendcap_internal.advanced(b, greatest(t, b.window_start));
        r := (b.budget_id, false, b.window_start, b.next_reset_at);
        RETURN r;
    END IF;
    -- What set_limits and set_parent cannot change must match under every rule.
    IF b.reset_every IS DISTINCT FROM every OR b.reset_timezone <> tz
       OR b.scope_type IS DISTINCT FROM scope_type OR b.scope_id IS DISTINCT FROM scope_id
       OR b.dedup_ttl_seconds <> ttl
       OR (reset_anchor IS NOT NULL AND b.reset_anchor IS DISTINCT FROM reset_anchor)
       OR exists_rule = 'error' AND (b.hard_limits <> hard OR b.soft_limits <> soft OR b.mode <> md
                                     OR b.parent_id IS DISTINCT FROM parent_id OR b.alert_percents IS DISTINCT FROM alerts
                                     OR b.series_every IS DISTINCT FROM series) THEN
        RAISE EXCEPTION USING ERRCODE = 'SC005',
            MESSAGE = format('budget_id: budget %s exists with a different definition', to_jsonb(b.budget_id));
    END IF;
    -- 'update': the rest is made to match as set_parent and set_limits would (usage, window and
    -- history kept), each only when it differs, so that a budget that matches is not written.
    IF b.parent_id IS DISTINCT FROM parent_id THEN
        PERFORM spendcap_internal.set_parent(budget_id, parent_id, at);
    END IF;
    IF b.hard_limits <> hard OR b.soft_limits <> soft OR b.mode <> md OR b.alert_percents IS DISTINCT FROM alerts
       OR b.series_every IS DISTINCT FROM series THEN
        PERFORM spendcap_internal.set_limits(budget_id, hard, soft, md, at, coalesce(alerts, '{}'), coalesce(series, 'off'));
    END IF;
    b := spendcap_internal.read_budget(budget_id);
    b := spendcap_internal.advanced(b, greatest(t, b.window_start));
    r := (b.budget_id, false, b.window_start, b.next_reset_at);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.create_budget FROM PUBLIC;
