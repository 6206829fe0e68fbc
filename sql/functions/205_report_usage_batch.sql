-- Batches (docs/semantics.md#batches): many report_usage calls in one transaction, with one lock
-- and one write per budget. Conventions: 000_validation.sql.

-- batch_text is the field of batch item it as text: null when absent or JSON null; SC002 naming
-- the field when it is not a string.
DROP FUNCTION IF EXISTS spendcap_internal.batch_text;
CREATE FUNCTION spendcap_internal.batch_text(it jsonb, field text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF coalesce(jsonb_typeof(it -> field), 'null') = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(it -> field) <> 'string' THEN
        PERFORM spendcap_internal.invalid_argument(field, 'must be a string');
    END IF;
    RETURN it ->> field;
END
$fn$;

-- batch_ids is the field of batch item it as text[]: null when absent or JSON null; SC002 naming
-- the field when it is not an array of strings.
DROP FUNCTION IF EXISTS spendcap_internal.batch_ids;
CREATE FUNCTION spendcap_internal.batch_ids(it jsonb, field text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF coalesce(jsonb_typeof(it -> field), 'null') = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(it -> field) <> 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(it -> field) AS e WHERE jsonb_typeof(e) <> 'string') THEN
        PERFORM spendcap_internal.invalid_argument(field, 'must be an array of ids');
    END IF;
    RETURN ARRAY(SELECT jsonb_array_elements_text(it -> field));
END
$fn$;

-- batch_args is step 1 of report_usage_batch: items checked whole (SC002 naming items when they
-- are not a JSON array of 1..1000 objects), then each item's arguments as report_usage checks
-- them, per item (1-based: item i is items -> (i - 1)): its budget_id (named), deltas in normal
-- form (ds), dedup key (keys, null for none) and also_charge (alsos: also_of, as array text); an
-- item that failed has its code and message (codes, msgs). fast says every item is the common one
-- (the report_usage fast path's rules: ids, a deltas object in normal form, no also_charge); cand
-- are the budgets the items name, for lock_batch. Every per-item array spans 1..n: an element
-- assigned first at i > 1 would otherwise start the array at i, and unnest would pair the items
-- wrongly.
DROP FUNCTION IF EXISTS spendcap_internal.batch_args;
CREATE FUNCTION spendcap_internal.batch_args(items jsonb,
    OUT n integer, OUT fast boolean, OUT named text[], OUT ds jsonb[], OUT keys text[], OUT alsos text[],
    OUT codes text[], OUT msgs text[], OUT cand text[])
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    it  jsonb;
    bad text;
BEGIN
    IF jsonb_typeof(items) IS DISTINCT FROM 'array' THEN
        PERFORM spendcap_internal.invalid_argument('items', 'must be a JSON array of 1..1000 objects');
    END IF;
    n := jsonb_array_length(items);
    IF n NOT BETWEEN 1 AND 1000
       OR EXISTS (SELECT FROM jsonb_array_elements(items) AS e WHERE jsonb_typeof(e) <> 'object') THEN
        PERFORM spendcap_internal.invalid_argument('items', 'must be a JSON array of 1..1000 objects');
    END IF;
    codes := array_fill(NULL::text, ARRAY[n]);
    msgs := codes;
    cand := '{}';
    -- First in one query for the common batch (one statement with quick_batch's measured slower).
    SELECT bool_and(coalesce(
               jsonb_typeof(e.it -> 'budget_id') = 'string' AND spendcap_internal.is_id(e.it ->> 'budget_id')
               AND (e.it - '{budget_id,deltas,dedup_key}'::text[]) = '{}'
               AND coalesce(jsonb_typeof(e.it -> 'dedup_key'), 'null') IN ('null', 'string')
               AND (coalesce(e.it ->> 'dedup_key', '') = '' OR spendcap_internal.is_id(e.it ->> 'dedup_key'))
               AND jsonb_typeof(e.it -> 'deltas') = 'object'
               AND (SELECT count(*) BETWEEN 1 AND 32
                           AND bool_and(jsonb_typeof(q.value) = 'number' AND spendcap_internal.is_dimension(q.key)
                                        AND spendcap_internal.is_quantity(q.value::numeric) AND scale(q.value::numeric) = 0)
                      FROM jsonb_each(e.it -> 'deltas') AS q), false)),
           array_agg(e.it ->> 'budget_id' ORDER BY e.i),
           array_agg(e.it -> 'deltas' ORDER BY e.i),
           array_agg(nullif(e.it ->> 'dedup_key', '') ORDER BY e.i)
      INTO fast, named, ds, keys
      FROM jsonb_array_elements(items) WITH ORDINALITY AS e(it, i);

    -- Any item outside the common batch sends the whole batch through the per-item checks, which
    -- name the argument.
    IF fast THEN
        alsos := array_fill('{}'::text, ARRAY[n]);
        cand := named;
    ELSE
        named := codes;
        keys := codes;
        alsos := codes;
        ds := array_fill(NULL::jsonb, ARRAY[n]);
    END IF;
    FOR i IN 1 .. n LOOP
        EXIT WHEN fast;
        it := items -> (i - 1);
        BEGIN
            SELECT f INTO bad FROM jsonb_object_keys(it) AS f
             WHERE f NOT IN ('budget_id', 'deltas', 'dedup_key', 'also_charge') ORDER BY f COLLATE "C" LIMIT 1;
            IF bad IS NOT NULL THEN
                PERFORM spendcap_internal.invalid_argument('items', format('unknown field %s', to_jsonb(bad)));
            END IF;
            named[i] := spendcap_internal.batch_text(it, 'budget_id');
            PERFORM spendcap_internal.check_id('budget_id', named[i]);
            ds[i] := spendcap_internal.quantities('deltas', it -> 'deltas', true);
            keys[i] := nullif(spendcap_internal.batch_text(it, 'dedup_key'), '');
            IF keys[i] IS NOT NULL THEN
                PERFORM spendcap_internal.check_id('dedup_key', keys[i]);
            END IF;
            alsos[i] := spendcap_internal.also_of(spendcap_internal.batch_ids(it, 'also_charge'), named[i])::text;
            cand := cand || named[i] || alsos[i]::text[];
        EXCEPTION WHEN SQLSTATE 'SC001' OR SQLSTATE 'SC002' THEN
            codes[i] := SQLSTATE;
            msgs[i] := SQLERRM;
        END;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.batch_args FROM PUBLIC;

-- quick_batch answers the common batch (batch_args' fast items at t0) when it can: see below. It
-- returns no row, and has locked and written nothing, when the batch needs the general path.
DROP FUNCTION IF EXISTS spendcap_internal.quick_batch;
CREATE FUNCTION spendcap_internal.quick_batch(named text[], ds jsonb[], keys text[], t0 timestamptz)
RETURNS SETOF spendcap.batch_result
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    quick       boolean;
    quick_ids   text[];
    quick_usage jsonb[];
    quick_util  integer[];
    quick_at    timestamptz[];
    quick_ws    timestamptz[];
    quick_next  timestamptz[];
    quick_exp   timestamptz[];
    quick_hard  jsonb[];
    quick_res   jsonb[];
BEGIN
    -- The quick batch: every item names an existing budget without a parent, no budget needs
    -- bringing to the instant, no item brings a key that is live or used twice in the batch, no
    -- budget reaches a threshold (docs/semantics.md#events: alert writes those per item), and
    -- every budget's new totals stay within all its limits (quantities are never negative, so the
    -- totals after the last item bound those after each one). Then every item is 'ok' and applied,
    -- exactly as the calls one by one would be (the report_usage fast path's test, on each
    -- budget's sum), and the batch is answered with two statements instead of a loop per item
    -- (docs/operations.md, "Benchmarks"). Anything else leaves before writing. The budgets are
    -- locked only when every item passed the checks and none of them has a parent, so that a
    -- batch that leaves locks nothing out of ascending order when lock_batch locks
    -- the sets.
    WITH qi AS (SELECT qi.i, qi.bid, qi.dl, qi.dk FROM unnest(named, ds, keys) WITH ORDINALITY AS qi(bid, dl, dk, i)),
         -- The lock, in ascending id order; its first reader (the count) reads every row.
         qb AS MATERIALIZED (
             SELECT z AS b, z.budget_id, z.usage, z.updated_at, z.window_start, z.next_reset_at,
                    z.utilisation_permille, z.hard_limits, z.reserved,
                    z.reservations_expire_at, z.series_next_at, z.parent_id, z.dedup_ttl_seconds, greatest(t0, z.window_start) AS tb
               FROM spendcap.budgets AS z
              WHERE z.budget_id = ANY (named)
                AND NOT EXISTS (SELECT FROM spendcap.budgets AS p WHERE p.budget_id = ANY (named) AND p.parent_id IS NOT NULL)
              ORDER BY z.budget_id COLLATE "C" FOR NO KEY UPDATE),
         -- At most 1000 deltas of at most 2^53 each: the sum stays a bigint.
         qd AS (SELECT qi.bid, qe.key AS dim, sum(qe.value::bigint)::bigint AS total
                  FROM qi, jsonb_each(qi.dl) AS qe GROUP BY 1, 2),
         qg AS (SELECT qb.budget_id,
                       bool_and(spendcap_internal.fits(qb.b, qd.dim, qd.total)) AS ok,
                       spendcap_internal.add_usage(qb.usage, array_agg(qd.dim), array_agg(qd.total)) AS nu,
                       spendcap_internal.raised_utilisation(qb.utilisation_permille, qb.hard_limits, qb.reserved,
                           spendcap_internal.add_usage(qb.usage, array_agg(qd.dim), array_agg(qd.total)), array_agg(qd.dim)) AS nut,
                       greatest(qb.updated_at, qb.tb) AS nat,
                       qb.window_start AS ws, qb.next_reset_at AS nr, qb.tb + make_interval(secs => qb.dedup_ttl_seconds) AS ex,
                       qb.hard_limits AS hl, qb.reserved AS rs
                  FROM qb JOIN qd ON qd.bid = qb.budget_id
                 GROUP BY qb.budget_id, qb.usage, qb.updated_at, qb.tb, qb.window_start, qb.next_reset_at, qb.dedup_ttl_seconds,
                          qb.utilisation_permille, qb.hard_limits, qb.reserved)
    SELECT (SELECT count(*) FROM qb) = (SELECT count(DISTINCT qi.bid) FROM qi)
           AND (SELECT bool_and(qb.parent_id IS NULL AND spendcap_internal.is_current(qb.next_reset_at, qb.reservations_expire_at, qb.series_next_at, qb.tb))
                  FROM qb)
           AND NOT EXISTS (SELECT FROM qi WHERE qi.dk IS NOT NULL GROUP BY qi.bid, qi.dk HAVING count(*) > 1)
           AND NOT EXISTS (SELECT FROM qi JOIN qb ON qb.budget_id = qi.bid
                             JOIN spendcap.dedup_keys AS dk ON dk.budget_id = qi.bid AND dk.dedup_key = qi.dk
                            WHERE dk.expires_at > qb.tb)
           AND qa.ok,
           qa.ids, qa.nu, qa.nut, qa.nat, qa.ws, qa.nr, qa.ex, qa.hl, qa.rs
      INTO quick, quick_ids, quick_usage, quick_util, quick_at, quick_ws, quick_next, quick_exp, quick_hard, quick_res
      FROM (SELECT bool_and(qg.ok) AS ok, array_agg(qg.budget_id) AS ids, array_agg(qg.nu) AS nu, array_agg(qg.nut) AS nut,
                   array_agg(qg.nat) AS nat, array_agg(qg.ws) AS ws, array_agg(qg.nr) AS nr, array_agg(qg.ex) AS ex,
                   array_agg(qg.hl) AS hl, array_agg(qg.rs) AS rs
              FROM qg) AS qa;
    IF quick THEN
        -- The writes and the results in one statement.
        RETURN QUERY
            WITH qn AS (SELECT * FROM unnest(quick_ids, quick_usage, quick_util, quick_at) AS qn(id, nu, nut, nat)),
                 qw AS (SELECT * FROM unnest(quick_ids, quick_ws, quick_next, quick_exp) AS qw(id, ws, nr, ex)),
                 -- Each item's remaining (docs/semantics.md#remaining): its budget's usage after
                 -- the items up to it is the final usage less what the later items add.
                 qh AS (SELECT * FROM unnest(quick_ids, quick_usage, quick_hard, quick_res) AS qh(id, nu, hl, rs)),
                 qe AS (SELECT qd.i, qd.bid, e.key AS dim,
                               sum(e.value::bigint) OVER (PARTITION BY qd.bid, e.key ORDER BY qd.i) AS cum,
                               sum(e.value::bigint) OVER (PARTITION BY qd.bid, e.key) AS tot
                          FROM unnest(named, ds) WITH ORDINALITY AS qd(bid, dl, i), jsonb_each(qd.dl) AS e),
                 qr AS (SELECT qe.i, jsonb_object_agg(qe.dim, greatest(0, (qh.hl ->> qe.dim)::bigint
                                   - (coalesce((qh.nu ->> qe.dim)::bigint, 0) - qe.tot + qe.cum)
                                   - coalesce((qh.rs ->> qe.dim)::bigint, 0))) AS rem
                          FROM qe JOIN qh ON qh.id = qe.bid
                         WHERE qh.hl ? qe.dim
                         GROUP BY qe.i),
                 up AS (UPDATE spendcap.budgets AS x SET usage = qn.nu, updated_at = qn.nat, utilisation_permille = qn.nut
                          FROM qn WHERE x.budget_id = qn.id),
                 ins AS (INSERT INTO spendcap.dedup_keys AS dk (budget_id, dedup_key, fingerprint, result, expires_at)
                         SELECT qi.bid, qi.dk, spendcap_internal.fingerprint('report_usage', NULL, qi.dl, NULL),
                                to_jsonb(ROW('ok', true, NULL, NULL, NULL, false, qw.ws, qw.nr, NULL, NULL,
                                             coalesce(qr.rem, '{}'))::spendcap.reserve_outcome),
                                qw.ex
                           FROM unnest(named, ds, keys) WITH ORDINALITY AS qi(bid, dl, dk, i) JOIN qw ON qw.id = qi.bid
                           LEFT JOIN qr ON qr.i = qi.i
                          WHERE qi.dk IS NOT NULL
                         ON CONFLICT ON CONSTRAINT dedup_keys_pkey
                         DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result, expires_at = excluded.expires_at)
            SELECT (qi.i - 1)::integer, 'ok'::text, true, NULL::text, NULL::bigint, NULL::bigint, false,
                   qw.ws, qw.nr, NULL::text, NULL::text, NULL::text, coalesce(qr.rem, '{}')
              FROM unnest(named) WITH ORDINALITY AS qi(bid, i) JOIN qw ON qw.id = qi.bid
              LEFT JOIN qr ON qr.i = qi.i
             ORDER BY qi.i;
        RETURN;
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.quick_batch FROM PUBLIC;

-- lock_batch is step 2 of report_usage_batch: every budget the items charge, locked once and
-- brought to t0 in memory (bs; origs as read; pos maps an id to its index), and each item's charged
-- set (sets: set_ids, as array text), or its SC001 or SC002 (codes, msgs).
DROP FUNCTION IF EXISTS spendcap_internal.lock_batch;
CREATE FUNCTION spendcap_internal.lock_batch(named text[], alsos text[], cand text[], t0 timestamptz,
    INOUT codes text[], INOUT msgs text[],
    OUT bs spendcap.budgets[], OUT origs spendcap.budgets[], OUT pos jsonb, OUT sets text[])
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    n     integer := cardinality(named);
    round integer := 0;
    more  text[];
    fresh spendcap.budgets[];
    b     spendcap.budgets;
    t     timestamptz;
    ids   text[];
    x     text;
    y     text;
BEGIN
    bs := '{}';
    origs := '{}';
    pos := '{}';
    sets := array_fill(NULL::text, ARRAY[n]);
    -- Every budget of the batch, locked once: the named ones and their chains as read, in one
    -- statement in ascending id order; then each item's set from the locked rows. A chain that
    -- reaches a budget not yet locked (a concurrent set_parent moved a budget before we locked it)
    -- locks what it lacks in another round; set_parent moves a budget under its lock, so once an
    -- item's named budgets are locked its chains hold.
    WHILE cardinality(cand) > 0 LOOP
        round := round + 1;
        WITH RECURSIVE c(id, depth) AS (
            SELECT DISTINCT u, 1 FROM unnest(cand) AS u
            UNION
            SELECT p.parent_id, c.depth + 1 FROM c JOIN spendcap.budgets AS p ON p.budget_id = c.id
             WHERE p.parent_id IS NOT NULL AND c.depth <= spendcap_internal.max_depth())
        SELECT coalesce(array_agg(DISTINCT c.id), '{}') INTO more FROM c WHERE NOT pos ? c.id;
        fresh := ARRAY(SELECT z FROM spendcap.budgets AS z WHERE z.budget_id = ANY (more)
                        ORDER BY z.budget_id COLLATE "C" FOR NO KEY UPDATE);
        SELECT pos || coalesce(jsonb_object_agg(f.budget_id, cardinality(bs) + f.ordinality), '{}')
          INTO pos FROM unnest(fresh) WITH ORDINALITY AS f;
        origs := origs || fresh;
        FOREACH b IN ARRAY fresh LOOP
            t := greatest(t0, b.window_start);
            IF NOT spendcap_internal.is_current(b.next_reset_at, b.reservations_expire_at, b.series_next_at, t) THEN
                b := spendcap_internal.brought(b, t);
            END IF;
            bs := bs || b;
        END LOOP;
        cand := '{}';
        FOR i IN 1 .. n LOOP
            CONTINUE WHEN codes[i] IS NOT NULL;
            IF alsos[i] = '{}' AND pos ? named[i] AND bs[(pos ->> named[i])::integer].parent_id IS NULL THEN
                sets[i] := ARRAY[named[i]]::text;
                CONTINUE;
            END IF;
            BEGIN
                ids := '{}';
                -- SC001 for the first unknown budget: budget_id, then also_charge in order.
                FOREACH x IN ARRAY named[i] || alsos[i]::text[] LOOP
                    IF NOT pos ? x THEN
                        PERFORM spendcap_internal.budget_not_found(x, CASE WHEN x = named[i] THEN 'budget_id' ELSE 'also_charge' END);
                    END IF;
                    y := x;
                    FOR step IN 0 .. spendcap_internal.max_depth() LOOP
                        ids := ids || y;
                        y := bs[(pos ->> y)::integer].parent_id;
                        EXIT WHEN y IS NULL;
                        IF NOT pos ? y THEN
                            -- Each round locks at least one budget more; a chain that still
                            -- lacks one after max_depth rounds names a budget that is gone.
                            IF round > spendcap_internal.max_depth() THEN
                                PERFORM spendcap_internal.budget_not_found(y, 'budget_id');
                            END IF;
                            cand := cand || y;
                            EXIT;
                        END IF;
                    END LOOP;
                END LOOP;
                sets[i] := spendcap_internal.set_ids(ids)::text;
            EXCEPTION WHEN SQLSTATE 'SC001' OR SQLSTATE 'SC002' THEN
                codes[i] := SQLSTATE;
                msgs[i] := SQLERRM;
            END;
        END LOOP;
    END LOOP;

END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.lock_batch FROM PUBLIC;

-- report_usage_batch admits items, a JSON array of 1..1000 objects {budget_id, deltas, dedup_key?,
-- also_charge?}, in array order and in one transaction, exactly as if each had been one
-- report_usage call after the other, all at the one instant at. It returns one row per item, in
-- order: its 0-based index and outcome, or error_code and error_message when that item failed (bad
-- input, unknown budget, SC003, SC004), which then changed nothing. A batch that is not such an
-- array (or a bad at) raises SC002 for the whole call.
--
-- Steps: 1. the items' arguments (batch_args). The common batch (no sets, nothing to roll or
-- release, no live or repeated key, every item fits) is then answered by quick_batch in a few
-- statements. Otherwise 2. every budget the batch charges (each item's set: the budget,
-- also_charge and their chains) is locked once, in one statement in ascending id order, and
-- brought to the call's instant in memory (lock_batch); 3. the items are admitted in order against
-- those in-memory rows with the helpers admit uses (fits, replay, judge, counted); 4. each budget
-- that an admitted item's set holds is written once, what bringing it changed (record_bring)
-- when an item first touches it, as a call that locked it would have written. Dedup keys join the batch's live keys as their item
-- is admitted, so a later item with the same key replays it, and are written at the end.
DROP FUNCTION IF EXISTS spendcap_internal.report_usage_batch;
CREATE FUNCTION spendcap_internal.report_usage_batch(
    items jsonb,
    at    timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.batch_result
LANGUAGE plpgsql VOLATILE
-- Generic plans: with arrays for parameters the planner keeps choosing custom plans, which
-- planned this function's statements again on every call (a third of a small batch's time). The
-- setting holds for the helpers this function calls too.
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    a        record;   -- batch_args
    l        record;   -- lock_batch
    t0       timestamptz;
    n        integer;
    named    text[];
    ds       jsonb[];
    keys     text[];
    alsos    text[];
    codes    text[];
    msgs     text[];
    outs     spendcap.reserve_outcome[] := '{}';
    bs       spendcap.budgets[];
    origs    spendcap.budgets[];
    pos      jsonb;
    sets     text[];
    touched  boolean[];
    ids      text[];
    x        text;
    j        integer;
    k        integer;
    t        timestamptz;
    fp       text;
    o        spendcap.reserve_outcome;
    es       spendcap.reserve_outcome[];
    afters   jsonb[];
    set_bs   spendcap.budgets[];
    r        spendcap.batch_result;
    jd       record;
    dims     text[];
    item_dims text[];
    item_qs  text[];
    qs       bigint[];
    fit      boolean;
    live     jsonb;
    new_keys integer[] := '{}';
    key_expiry timestamptz[];
    dirty    spendcap.budgets[] := '{}';
    prev     spendcap.budgets;
BEGIN
    -- 1. The arguments.
    a := spendcap_internal.batch_args(items);
    t0 := spendcap_internal.instant(at);
    n := a.n;
    named := a.named;
    ds := a.ds;
    keys := a.keys;
    alsos := a.alsos;
    IF a.fast THEN
        RETURN QUERY SELECT * FROM spendcap_internal.quick_batch(named, ds, keys, t0);
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    -- 2. The budgets, locked.
    l := spendcap_internal.lock_batch(named, alsos, a.cand, t0, a.codes, a.msgs);
    codes := l.codes;
    msgs := l.msgs;
    bs := l.bs;
    origs := l.origs;
    pos := l.pos;
    sets := l.sets;
    touched := array_fill(false, ARRAY[cardinality(bs)]);
    key_expiry := array_fill(NULL::timestamptz, ARRAY[n]);
    -- Each item's deltas as arrays (dimensions and quantities, as array text, in one order), read
    -- in one query for the batch rather than one per item.
    SELECT array_agg(coalesce((SELECT array_agg(d.key)::text FROM jsonb_each(u.dl) AS d), '{}') ORDER BY u.i),
           array_agg(coalesce((SELECT array_agg(d.value::bigint)::text FROM jsonb_each(u.dl) AS d), '{}') ORDER BY u.i)
      INTO item_dims, item_qs
      FROM unnest(ds) WITH ORDINALITY AS u(dl, i);

    -- The live keys the items name, read once (under their budgets' locks); keys the batch
    -- itself uses join them as their items are admitted, and are written in one statement at the
    -- end.
    SELECT coalesce(jsonb_object_agg(dk.budget_id || ' ' || dk.dedup_key,
                                     jsonb_build_object('fp', dk.fingerprint, 'r', dk.result)), '{}')
      INTO live
      FROM spendcap.dedup_keys AS dk
      JOIN unnest(named, keys, codes) AS u(bid, key, code) ON dk.budget_id = u.bid AND dk.dedup_key = u.key
     WHERE u.code IS NULL AND u.key IS NOT NULL
       AND dk.expires_at > greatest(t0, bs[(pos ->> u.bid)::integer].window_start);

    -- 3. The items in order, against the in-memory rows. Errors come before anything is applied.
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN codes[i] IS NOT NULL;
        ids := sets[i]::text[];
        set_bs := '{}';
        FOREACH x IN ARRAY ids LOOP
            set_bs := set_bs || bs[(pos ->> x)::integer];
        END LOOP;
        k := array_position(ids, named[i]);
        t := greatest(t0, set_bs[k].window_start);
        o := NULL;
        BEGIN
            IF keys[i] IS NOT NULL THEN
                fp := spendcap_internal.fingerprint('report_usage', NULL, ds[i], alsos[i]::text[]);
                o := spendcap_internal.replay('dedup_key', keys[i], fp,
                                              live -> (named[i] || ' ' || keys[i]) ->> 'fp', live -> (named[i] || ' ' || keys[i]) -> 'r');
            END IF;
            -- Every new total within every limit of every budget of the set (the report_usage
            -- fast path's test): ok, applied, and no counter moves; else judge decides.
            fit := o IS NULL;
            dims := item_dims[i]::text[];
            qs := item_qs[i]::bigint[];
            FOR m IN 1 .. cardinality(set_bs) LOOP
                EXIT WHEN NOT fit;
                FOR e IN 1 .. cardinality(dims) LOOP
                    -- (An item that raises a threshold event is judged, and alert writes its events.)
                    IF NOT spendcap_internal.fits(set_bs[m], dims[e], qs[e]) THEN
                        fit := false;
                        EXIT;
                    END IF;
                END LOOP;
            END LOOP;
            IF fit THEN
                o := ROW('ok', true, NULL, NULL, NULL, false, set_bs[k].window_start, set_bs[k].next_reset_at, NULL, NULL, NULL);
            ELSIF o IS NULL THEN
                SELECT * INTO jd FROM spendcap_internal.judge(set_bs, ds[i], 'deltas', k);
                o := jd.o;
                es := jd.es;
                afters := jd.afters;
            END IF;
        EXCEPTION WHEN SQLSTATE 'SC003' OR SQLSTATE 'SC004' THEN
            codes[i] := SQLSTATE;
            msgs[i] := SQLERRM;
            CONTINUE;
        END;
        -- Admitted (or replayed, or refused): the call would have locked and brought every budget
        -- of its set, writing what bringing it changed (a closed window and its event) before the
        -- events of its admission, as a call does.
        FOREACH x IN ARRAY ids LOOP
            j := (pos ->> x)::integer;
            IF NOT touched[j] THEN
                touched[j] := true;
                IF bs[j].next_reset_at IS DISTINCT FROM origs[j].next_reset_at OR bs[j].reserved IS DISTINCT FROM origs[j].reserved
                   OR bs[j].reservations_expire_at IS DISTINCT FROM origs[j].reservations_expire_at
                   OR bs[j].series_start IS DISTINCT FROM origs[j].series_start THEN
                    PERFORM spendcap_internal.record_bring(origs[j], bs[j], greatest(t0, origs[j].window_start));
                END IF;
            END IF;
        END LOOP;
        IF fit THEN
            FOR m IN 1 .. cardinality(ids) LOOP
                j := (pos ->> ids[m])::integer;
                bs[j].usage := spendcap_internal.add_usage(bs[j].usage, dims, qs);
                bs[j].updated_at := greatest(bs[j].updated_at, t0, bs[j].window_start);
            END LOOP;
        ELSIF NOT o.replayed THEN
            IF NOT o.applied THEN
                -- Refused: only the refusing budget's breach counters move.
                j := (pos ->> o.breach_budget_id)::integer;
                prev := bs[j];
                bs[j] := spendcap_internal.counted(bs[j], o, greatest(t0, bs[j].window_start));
                bs[j].updated_at := greatest(bs[j].updated_at, t0, bs[j].window_start);
                PERFORM spendcap_internal.alert(prev, bs[j], o, greatest(t0, bs[j].window_start));
            ELSE
                FOR m IN 1 .. cardinality(ids) LOOP
                    j := (pos ->> ids[m])::integer;
                    prev := bs[j];
                    bs[j] := spendcap_internal.counted(bs[j], es[m], greatest(t0, bs[j].window_start));
                    bs[j].usage := afters[m];
                    bs[j].updated_at := greatest(bs[j].updated_at, t0, bs[j].window_start);
                    PERFORM spendcap_internal.alert(prev, bs[j], es[m], greatest(t0, bs[j].window_start));
                END LOOP;
            END IF;
        END IF;
        -- What the item leaves: each budget of its set as the items up to it left it (a replay
        -- keeps what it stored).
        IF NOT o.replayed THEN
            o.remaining := '{}';
            FOREACH x IN ARRAY ids LOOP
                o.remaining := spendcap_internal.remaining_into(o.remaining, bs[(pos ->> x)::integer].hard_limits,
                    bs[(pos ->> x)::integer].usage, bs[(pos ->> x)::integer].reserved, dims);
            END LOOP;
        END IF;
        IF keys[i] IS NOT NULL AND NOT o.replayed THEN
            live := live || jsonb_build_object(named[i] || ' ' || keys[i], jsonb_build_object('fp', fp, 'r', to_jsonb(o)));
            new_keys := new_keys || i;
            key_expiry[i] := t + make_interval(secs => set_bs[k].dedup_ttl_seconds);
        END IF;
        outs[i] := o;
    END LOOP;

    -- 4. Each budget an admitted item locked, written once (save_all; what bringing it changed
    -- was written when an item first touched it); the new keys in one statement.
    FOR j IN 1 .. cardinality(bs) LOOP
        CONTINUE WHEN NOT touched[j] OR bs[j] IS NOT DISTINCT FROM origs[j];
        dirty := dirty || bs[j];
    END LOOP;
    PERFORM spendcap_internal.save_all(dirty);
    IF cardinality(new_keys) > 0 THEN
        INSERT INTO spendcap.dedup_keys AS dk (budget_id, dedup_key, fingerprint, result, expires_at)
        SELECT named[i], keys[i], live -> (named[i] || ' ' || keys[i]) ->> 'fp', live -> (named[i] || ' ' || keys[i]) -> 'r',
               key_expiry[i]
          FROM unnest(new_keys) AS i
        ON CONFLICT ON CONSTRAINT dedup_keys_pkey
        DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result, expires_at = excluded.expires_at;
    END IF;

    FOR i IN 1 .. n LOOP
        r := NULL;
        r.item := i - 1;
        IF codes[i] IS NOT NULL THEN
            r.error_code := codes[i];
            r.error_message := msgs[i];
        ELSE
            o := outs[i];
            r.outcome := o.outcome;
            r.applied := o.applied;
            r.dimension := o.dimension;
            r.usage := o.usage;
            r.limit_value := o.limit_value;
            r.replayed := o.replayed;
            r.window_start := o.window_start;
            r.next_reset_at := o.next_reset_at;
            r.breach_budget_id := o.breach_budget_id;
            r.remaining := o.remaining;
        END IF;
        RETURN NEXT r;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.batch_text, spendcap_internal.batch_ids FROM PUBLIC;
REVOKE ALL ON FUNCTION spendcap_internal.report_usage_batch FROM PUBLIC;
