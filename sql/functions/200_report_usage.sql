-- report_usage (docs/semantics.md#admission, #idempotency): admits deltas into the budget's current window. With a dedup_key, a
-- repeat with the same deltas replays the stored outcome; other deltas raise SC003.
-- Locks the budgets rows of the charged set (the budget, its chain, also_charge) in ascending id
-- order. Writes them, and one dedup_keys row with a key (plus one budget_history row for each
-- budget whose window the call rolls).
--
-- Fast path. Most calls need no roll, find no expired reservation, pass every check with room to
-- spare and bring a new (or no) dedup key. Such a call is answered here with a loop that validates
-- the deltas, one locking read, a loop that adds them and one UPDATE, and its outcome is always
-- 'ok'. A budget with a parent and no dedup key takes the same path over its chain: the chain read,
-- its rows locked in ascending id order in one statement, the same test on each, one UPDATE each.
-- Anything else (bad input, also_charge, a due window, an expired reservation, a dimension that would pass
-- a soft or hard limit or MAX_QTY, a threshold event to raise, a live dedup key) leaves the fast path before it writes and goes
-- through spendcap_internal.admit, which decides the outcome and raises the errors. So the fast
-- path needs only the test "every new total stays within all limits", never the admission rules.
-- Why not the general path alone: PL/pgSQL sets up each statement and expression again in every
-- transaction, so an admission's cost follows the number of statements and helper calls it runs,
-- and this path runs the fewest (see docs/operations.md, "Benchmarks").
-- fits says whether q more in dimension dim leaves budget b's total there (usage and live
-- reservations) within all its limits and reaches none of its alert percents: the one test of the
-- fast paths (report_usage alone and over a chain, report_usage_batch's quick batch and its
-- items), which admit never needs (a call that fits is 'ok'). A call that raises a threshold event
-- is the general path's (alert). An inlined SQL function: free in PL/pgSQL.
DROP FUNCTION IF EXISTS spendcap_internal.fits;
CREATE FUNCTION spendcap_internal.fits(b spendcap.budgets, dim text, q bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT coalesce((b.usage ->> dim)::bigint, 0) + q + coalesce((b.reserved ->> dim)::bigint, 0)
               <= spendcap_internal.room(b.hard_limits, b.soft_limits, dim)
           AND NOT (b.alert_percents IS NOT NULL
                    AND spendcap_internal.crosses((b.usage ->> dim)::bigint, coalesce((b.usage ->> dim)::bigint, 0) + q,
                                                  (b.hard_limits ->> dim)::bigint, b.alert_percents))
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.fits FROM PUBLIC;

DROP FUNCTION IF EXISTS spendcap_internal.report_usage;
CREATE FUNCTION spendcap_internal.report_usage(
    budget_id text,
    deltas    jsonb,
    dedup_key text        DEFAULT NULL,
    at        timestamptz DEFAULT NULL,
    also_charge text[]    DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    key      text := nullif(dedup_key, '');
    names    jsonb;
    n        integer;
    k        text;
    v        jsonb;
    q        bigint;
    dims     text[];
    qs       bigint[];
    b        spendcap.budgets;
    c        spendcap.budgets;
    bs       spendcap.budgets[];
    ids      text[];
    tc       timestamptz;
    usage    jsonb;
    t        timestamptz;
    rem      jsonb := '{}';
    o        spendcap.usage_outcome;
BEGIN
    <<fast>>
    BEGIN
        -- The rules of the general path (inlined SQL functions); a failure here only means "take
        -- the general path", which names the argument.
        -- coalesce: a null argument makes the test null, which must mean "leave" too.
        IF NOT coalesce(spendcap_internal.is_id(budget_id) AND jsonb_typeof(deltas) = 'object'
                AND (key IS NULL OR spendcap_internal.is_id(key)) AND also_charge IS NULL, false) THEN
            EXIT fast;
        END IF;
        -- Validate the deltas before taking the lock, which then covers only the arithmetic.
        names := jsonb_path_query_array(deltas, 'strict $.keyvalue().key');
        n := jsonb_array_length(names);
        IF NOT n BETWEEN 1 AND 32 THEN
            EXIT fast;
        END IF;
        FOR i IN 0 .. n - 1 LOOP
            k := names ->> i;
            v := deltas -> k;
            -- A valid quantity in normal form (scale 0, so deltas::text is the normalised text
            -- that admit fingerprints), else null.
            q := CASE WHEN jsonb_typeof(v) = 'number' AND spendcap_internal.is_dimension(k) THEN
                     CASE WHEN spendcap_internal.is_quantity(v::numeric) AND scale(v::numeric) = 0 THEN v::bigint END
                 END;
            IF q IS NULL THEN
                EXIT fast;
            END IF;
            dims[i + 1] := k;
            qs[i + 1] := q;
        END LOOP;
        -- Only a budget without a parent is locked here: a chain must be locked in ascending id
        -- order by the general path, and holding the child's lock while it locks the ancestors
        -- would deadlock with a charge to the same chain.
        SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = budget_id AND x.parent_id IS NULL FOR NO KEY UPDATE;
        IF NOT FOUND AND key IS NULL THEN
            -- No such budget, or one with a parent, which charges its whole chain: without a
            -- dedup key (whose fingerprint and replay are the general path's) the chain is
            -- charged here too, locked in ascending id order as the general path locks it.
            ids := budget_id || spendcap_internal.ancestors(budget_id);
            IF cardinality(ids) = 1 THEN
                EXIT fast;
            END IF;
            t := CASE WHEN at IS NULL THEN now() ELSE spendcap_internal.instant(at) END;
            bs := ARRAY(SELECT x FROM spendcap.budgets AS x WHERE x.budget_id = ANY (ids)
                         ORDER BY x.budget_id COLLATE "C" FOR NO KEY UPDATE);
            IF cardinality(bs) <> cardinality(ids) THEN
                EXIT fast;
            END IF;
            FOREACH c IN ARRAY bs LOOP
                tc := greatest(t, c.window_start);
                -- The chain as locked is the chain read (set_parent moves a budget under its lock).
                IF c.parent_id IS DISTINCT FROM ids[array_position(ids, c.budget_id) + 1]
                   OR NOT spendcap_internal.is_current(c.next_reset_at, c.reservations_expire_at, c.series_next_at, tc) THEN
                    EXIT fast;
                END IF;
                FOR i IN 1 .. n LOOP
                    IF NOT spendcap_internal.fits(c, dims[i], qs[i]) THEN
                        EXIT fast;
                    END IF;
                END LOOP;
            END LOOP;
            FOREACH c IN ARRAY bs LOOP
                usage := spendcap_internal.add_usage(c.usage, dims, qs);
                UPDATE spendcap.budgets AS x SET usage = usage, updated_at = greatest(c.updated_at, t, c.window_start),
                       utilisation_permille = spendcap_internal.raised_utilisation(c.utilisation_permille, c.hard_limits, c.reserved, usage, dims)
                 WHERE x.budget_id = c.budget_id;
                IF c.budget_id = budget_id THEN
                    b := c;
                END IF;
                rem := spendcap_internal.remaining_into(rem, c.hard_limits, usage, c.reserved, dims);
            END LOOP;
            o := ROW('ok', true, NULL, NULL, NULL, false, b.window_start, b.next_reset_at, NULL, rem);
            RETURN o;
        END IF;
        -- now() inline for the common call without at: the helper call is for callers that pass one.
        t := greatest(CASE WHEN at IS NULL THEN now() ELSE spendcap_internal.instant(at) END, b.window_start);
        -- Not found: no such budget, or one with a parent and a dedup key.
        IF NOT (FOUND AND b.parent_id IS NULL AND spendcap_internal.is_current(b.next_reset_at, b.reservations_expire_at, b.series_next_at, t)) THEN
            EXIT fast;
        END IF;
        FOR i IN 1 .. n LOOP
            IF NOT spendcap_internal.fits(b, dims[i], qs[i]) THEN
                EXIT fast;
            END IF;
        END LOOP;
        usage := spendcap_internal.add_usage(b.usage, dims, qs);
        rem := spendcap_internal.remaining_into(rem, b.hard_limits, usage, b.reserved, dims);
        o := ROW('ok', true, NULL, NULL, NULL, false, b.window_start, b.next_reset_at, NULL, rem);
        IF key IS NOT NULL THEN
            -- Claims the key unless a live one exists (replay or SC003: the general path decides).
            -- The budget row is locked and every writer of this budget's keys holds that lock, so
            -- this statement sees every key committed before us.
            INSERT INTO spendcap.dedup_keys AS x (budget_id, dedup_key, fingerprint, result, expires_at)
            VALUES (budget_id, key, spendcap_internal.fingerprint('report_usage', NULL, deltas, NULL),
                    to_jsonb(ROW('ok', true, NULL, NULL, NULL, false, b.window_start, b.next_reset_at, NULL, NULL, rem)::spendcap.reserve_outcome),
                    t + make_interval(secs => b.dedup_ttl_seconds))
            ON CONFLICT ON CONSTRAINT dedup_keys_pkey
            DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result, expires_at = excluded.expires_at
            WHERE x.expires_at <= t;
            IF NOT FOUND THEN
                EXIT fast;
            END IF;
        END IF;
        -- The one write outside spendcap_internal.save: the columns this path changes. Calling
        -- save (every column, and a call with the whole row) cost 12% of this path's throughput.
        UPDATE spendcap.budgets AS x SET usage = usage, updated_at = greatest(b.updated_at, t),
               utilisation_permille = spendcap_internal.raised_utilisation(b.utilisation_permille, b.hard_limits, b.reserved, usage, dims)
         WHERE x.budget_id = budget_id;
        RETURN o;
    END;
    RETURN spendcap_internal.usage_outcome(spendcap_internal.admit('report_usage', budget_id, NULL, deltas, dedup_key, NULL, at, also_charge));
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.report_usage FROM PUBLIC;
