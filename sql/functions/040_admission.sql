-- Admission: evaluating deltas against a budget and applying them (docs/semantics.md#admission).
-- Conventions of every spendcap_internal file: 000_validation.sql.

-- fingerprint is what a dedup or idempotency key remembers of its call: the operation, the
-- execution or reservation id and the normalised deltas. The report_usage fast path stores the
-- same text (it holds deltas in normal form), so a retry matches whichever path it takes.
DROP FUNCTION IF EXISTS spendcap_internal.fingerprint;
CREATE FUNCTION spendcap_internal.fingerprint(op text, ref_id text, d jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT op || '' '' || coalesce(ref_id, '''') || '' '' || d::text';

-- evaluate runs admission steps 1-3 of docs/semantics.md#admission for deltas against budget b (already rolled to the
-- call's instant) whose live reservations sum to reserved, and returns the outcome o and the usage
-- the deltas would leave (usage_after, computed in the same query: callers apply it when o says
-- so); it writes nothing and moves no counter. Dimensions are taken in ascending byte order.
-- force: the deltas are applied whatever the hard check says (settle; observe mode does the same).
DROP FUNCTION IF EXISTS spendcap_internal.evaluate;
CREATE FUNCTION spendcap_internal.evaluate(b spendcap.budgets, reserved jsonb, deltas jsonb, arg text, force boolean,
    OUT o spendcap.reserve_outcome, OUT usage_after jsonb)
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    dims   text[];
    totals bigint[];
    adds   bigint[];
    lim    bigint;
    i      integer;
BEGIN
    SELECT array_agg(e.key ORDER BY e.key COLLATE "C"),
           array_agg(coalesce((b.usage ->> e.key)::bigint, 0) + coalesce((reserved ->> e.key)::bigint, 0) ORDER BY e.key COLLATE "C"),
           array_agg(e.value::bigint ORDER BY e.key COLLATE "C"),
           b.usage || coalesce(jsonb_object_agg(e.key, coalesce((b.usage ->> e.key)::bigint, 0) + e.value::bigint)
                                   FILTER (WHERE coalesce((b.usage ->> e.key)::bigint, 0) + e.value::bigint <> 0), '{}')
      INTO dims, totals, adds, usage_after
      FROM jsonb_each(deltas) e;
    o.outcome := 'ok';
    o.applied := true;
    o.replayed := false;
    o.window_start := b.window_start;
    o.next_reset_at := b.next_reset_at;
    FOR i IN 1 .. coalesce(array_length(dims, 1), 0) LOOP
        IF totals[i] + adds[i] > spendcap_internal.max_qty() THEN
            RAISE EXCEPTION USING ERRCODE = 'SC004', MESSAGE = format(
                '%s: %s would reach %s, above 9007199254740991', arg, to_jsonb(dims[i]), totals[i] + adds[i]);
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(dims, 1), 0) LOOP
        lim := (b.hard_limits ->> dims[i])::bigint;
        IF lim IS NOT NULL AND totals[i] + adds[i] > lim THEN
            o.outcome := 'hard_breach';
            o.dimension := dims[i];
            o.limit_value := lim;
            IF force OR b.mode = 'observe' THEN
                o.usage := totals[i] + adds[i];
            ELSE
                o.applied := false;
                o.usage := totals[i];
            END IF;
            RETURN;
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(dims, 1), 0) LOOP
        lim := (b.soft_limits ->> dims[i])::bigint;
        IF lim IS NOT NULL AND totals[i] + adds[i] > lim THEN
            o.outcome := 'soft_breach';
            o.dimension := dims[i];
            o.limit_value := lim;
            o.usage := totals[i] + adds[i];
            RETURN;
        END IF;
    END LOOP;
    RETURN;
END
$fn$;

-- counted moves the breach counters of b for outcome o at instant t (docs/semantics.md#admission).
DROP FUNCTION IF EXISTS spendcap_internal.counted;
CREATE FUNCTION spendcap_internal.counted(b spendcap.budgets, o spendcap.reserve_outcome, t timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF o.outcome = 'hard_breach' THEN
        b.breach_count := b.breach_count + 1;
        b.window_breach_count := b.window_breach_count + 1;
        b.last_breach_at := t;
        b.last_breach_dim := o.dimension;
    ELSIF o.outcome = 'soft_breach' THEN
        b.soft_breach_count := b.soft_breach_count + 1;
        b.window_soft_breach_count := b.window_soft_breach_count + 1;
    END IF;
    RETURN b;
END
$fn$;

-- admit is report_usage, record_spend and reserve (docs/semantics.md#admission, #idempotency, #spend-and-reservations), which differ only in where applied
-- deltas go: usage, usage and the execution ledger, or a new reservation. op is the public
-- function's name; ref_id the execution or reservation id.
-- Locks one budgets row. Writes: the budgets row; with a key one dedup_keys row; record_spend one
-- spend_ledger row; reserve one reservations row.
DROP FUNCTION IF EXISTS spendcap_internal.admit;
CREATE FUNCTION spendcap_internal.admit(
    op text, budget_id text, ref_id text, deltas jsonb, dedup_key text, ttl_seconds integer, at timestamptz)
RETURNS spendcap.reserve_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    deltas_arg text := CASE op WHEN 'reserve' THEN 'amounts' ELSE 'deltas' END;
    key_arg    text := CASE op WHEN 'report_usage' THEN 'dedup_key' ELSE 'idempotency_key' END;
    d          jsonb;
    key        text := nullif(dedup_key, '');
    b          spendcap.budgets;
    t          timestamptz;
    fp         text;
    stored     record;
    e          record;
    o          spendcap.reserve_outcome;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    IF op = 'record_spend' THEN
        PERFORM spendcap_internal.check_id('execution_id', ref_id);
    ELSIF op = 'reserve' THEN
        PERFORM spendcap_internal.check_id('reservation_id', ref_id);
        IF ttl_seconds IS NULL OR ttl_seconds NOT BETWEEN 1 AND 86400 THEN
            PERFORM spendcap_internal.invalid_argument('ttl_seconds', 'must be 1..86400');
        END IF;
    END IF;
    d := spendcap_internal.quantities(deltas_arg, deltas, true);
    IF key IS NOT NULL THEN
        PERFORM spendcap_internal.check_id(key_arg, key);
    END IF;

    t := spendcap_internal.instant(at);
    b := spendcap_internal.lock_budget(budget_id, t);
    t := greatest(t, b.window_start);

    IF key IS NOT NULL THEN
        fp := spendcap_internal.fingerprint(op, ref_id, d);
        SELECT k.fingerprint, k.result INTO stored
          FROM spendcap.dedup_keys AS k
         WHERE k.budget_id = budget_id AND k.dedup_key = key AND k.expires_at > t;
        IF FOUND THEN
            IF stored.fingerprint <> fp THEN
                RAISE EXCEPTION USING ERRCODE = 'SC003', MESSAGE = format(
                    '%s: %s was first used with different arguments', key_arg, to_jsonb(key));
            END IF;
            o := jsonb_populate_record(NULL::spendcap.reserve_outcome, stored.result);
            o.replayed := true;
            RETURN o;
        END IF;
    END IF;

    IF op = 'reserve' AND EXISTS (SELECT 1 FROM spendcap.reservations AS r
                                  WHERE r.budget_id = budget_id AND r.reservation_id = ref_id) THEN
        PERFORM spendcap_internal.invalid_argument('reservation_id', format('reservation %s is live', to_jsonb(ref_id)));
    END IF;

    e := spendcap_internal.evaluate(b, b.reserved, d, deltas_arg, false);
    o := e.o;
    b := spendcap_internal.counted(b, o, t);
    IF o.applied THEN
        IF op = 'reserve' THEN
            o.expires_at := t + make_interval(secs => ttl_seconds);
            INSERT INTO spendcap.reservations (budget_id, reservation_id, amounts, expires_at)
            VALUES (budget_id, ref_id, d, o.expires_at);
            b.reserved := spendcap_internal.plus(b.reserved, d);
            b.reservations_expire_at := least(b.reservations_expire_at, o.expires_at);
        ELSE
            b.usage := e.usage_after;
            IF op = 'record_spend' THEN
                INSERT INTO spendcap.spend_ledger AS l (budget_id, execution_id, window_seq, amounts)
                VALUES (budget_id, ref_id, b.window_seq, d)
                ON CONFLICT ON CONSTRAINT spend_ledger_pkey
                DO UPDATE SET amounts = spendcap_internal.plus(l.amounts, excluded.amounts);
            END IF;
        END IF;
    END IF;
    b.updated_at := greatest(b.updated_at, t);
    PERFORM spendcap_internal.save(b);

    IF key IS NOT NULL THEN
        INSERT INTO spendcap.dedup_keys AS k (budget_id, dedup_key, fingerprint, result, expires_at)
        VALUES (budget_id, key, fp, to_jsonb(o), t + make_interval(secs => b.dedup_ttl_seconds))
        ON CONFLICT ON CONSTRAINT dedup_keys_pkey
        DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result, expires_at = excluded.expires_at;
    END IF;
    RETURN o;
END
$fn$;

-- usage_outcome drops expires_at from a reserve_outcome.
DROP FUNCTION IF EXISTS spendcap_internal.usage_outcome;
CREATE FUNCTION spendcap_internal.usage_outcome(o spendcap.reserve_outcome)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN ROW(o.outcome, o.applied, o.dimension, o.usage, o.limit_value, o.replayed, o.window_start, o.next_reset_at)::spendcap.usage_outcome;
END
$fn$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA spendcap_internal FROM PUBLIC;
