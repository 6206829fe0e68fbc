-- Admission: evaluating deltas against a budget and applying them (docs/semantics.md#admission).
-- Conventions of every spendcap_internal file: 000_validation.sql.

-- fingerprint is what a dedup or idempotency key remembers of its call: the operation, the
-- execution or reservation id, the normalised deltas and the other budgets the call named (also,
-- as also_of returns them: sorted, once each). The report_usage fast path stores the same text
-- (it holds deltas in normal form), so a retry matches whichever path it takes.
DROP FUNCTION IF EXISTS spendcap_internal.fingerprint;
CREATE FUNCTION spendcap_internal.fingerprint(op text, ref_id text, d jsonb, also text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT op || '' '' || coalesce(ref_id, '''') || '' '' || d::text
           || CASE WHEN cardinality(also) > 0 THEN '' also='' || array_to_string(also, '','') ELSE '''' END';

-- max_set is how many budgets one call charges at most, ancestors included.
DROP FUNCTION IF EXISTS spendcap_internal.max_set;
CREATE FUNCTION spendcap_internal.max_set()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT 64';

-- also_of checks the other ids a call names (also_charge: budgets; also_policies: policies; at
-- most max_set, each an id) and returns them sorted in byte order, once each, without the first
-- named id: so null, {} and {budget_id} all name the budget alone. charged_set and policy_set say
-- which of them do not exist. arg names the argument in errors.
DROP FUNCTION IF EXISTS spendcap_internal.also_of;
CREATE FUNCTION spendcap_internal.also_of(also_charge text[], budget_id text, arg text DEFAULT 'also_charge')
RETURNS text[]
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    x    text;
    also text[];
BEGIN
    IF cardinality(also_charge) > spendcap_internal.max_set() THEN
        PERFORM spendcap_internal.invalid_argument(arg,
            format('a call names at most %s %s', spendcap_internal.max_set(),
                   CASE arg WHEN 'also_charge' THEN 'budgets, ancestors included' ELSE 'policies' END));
    END IF;
    FOREACH x IN ARRAY coalesce(also_charge, '{}') LOOP
        PERFORM spendcap_internal.check_id(arg, x);
    END LOOP;
    SELECT coalesce(array_agg(s.x ORDER BY s.x COLLATE "C"), '{}') INTO also
      FROM (SELECT DISTINCT y AS x FROM unnest(also_charge) AS y WHERE y <> budget_id) AS s;
    RETURN also;
END
$fn$;

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
           array_agg(e.value::bigint ORDER BY e.key COLLATE "C")
      INTO dims, totals, adds
      FROM jsonb_each(deltas) e;
    usage_after := spendcap_internal.add_usage(b.usage, dims, adds);
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

-- remaining_into folds a budget with hard limits hard, usage and reserved, as a call leaves it,
-- into rem, the remaining of an outcome (docs/semantics.md#remaining) for the call's dimensions
-- dims: in each dimension the budget hard-limits, rem keeps the least of what it holds and
-- max(0, hard - usage - reserved). Start from '{}' and fold every budget of the charged set: a
-- dimension no budget limits stays absent. A loop of simple expressions, as add_usage, so that
-- the fast paths pay no query for it; it takes the three objects rather than the budget row,
-- whose copy into the call cost a 3-level chain's fast path a tenth of its speed.
DROP FUNCTION IF EXISTS spendcap_internal.remaining_into;
CREATE FUNCTION spendcap_internal.remaining_into(rem jsonb, hard jsonb, usage jsonb, reserved jsonb, dims text[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
DECLARE
    h bigint;
    r bigint;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(dims), 0) LOOP
        h := (hard ->> dims[i])::bigint;
        CONTINUE WHEN h IS NULL;
        r := greatest(0, h - coalesce((usage ->> dims[i])::bigint, 0) - coalesce((reserved ->> dims[i])::bigint, 0));
        IF coalesce((rem ->> dims[i])::bigint > r, true) THEN
            rem := rem || jsonb_build_object(dims[i], r);
        END IF;
    END LOOP;
    RETURN rem;
END
$fn$;

-- keys_of is the dimensions of a deltas object.
DROP FUNCTION IF EXISTS spendcap_internal.keys_of;
CREATE FUNCTION spendcap_internal.keys_of(d jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT coalesce(array_agg(e), ''{}'') FROM jsonb_object_keys(d) AS e';

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

-- set_ids is a charged set made of the budgets ids (the named ones and their chains, in any order,
-- repeats allowed): each once, in ascending byte order of their ids, which is also the order in
-- which admission locks them; SC002 past max_set budgets. charged_set walks the chains in the
-- table, report_usage_batch in its locked rows.
DROP FUNCTION IF EXISTS spendcap_internal.set_ids;
CREATE FUNCTION spendcap_internal.set_ids(ids text[])
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    s text[] := ARRAY(SELECT u.x FROM (SELECT DISTINCT x FROM unnest(ids) AS x) AS u ORDER BY u.x COLLATE "C");
BEGIN
    IF cardinality(s) > spendcap_internal.max_set() THEN
        PERFORM spendcap_internal.invalid_argument('also_charge',
            format('a call names at most %s budgets, ancestors included', spendcap_internal.max_set()));
    END IF;
    RETURN s;
END
$fn$;

-- charged_set is the set a charge to budget_id and the budgets also (also_of) counts on
-- (docs/semantics.md#budget-sets): those budgets and the ancestors of each, once each, in
-- ascending byte order of their ids, which is also the order in which admission locks them.
-- SC001 for an unknown budget of also; SC002 past max_set budgets.
DROP FUNCTION IF EXISTS spendcap_internal.charged_set;
CREATE FUNCTION spendcap_internal.charged_set(budget_id text, also text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    x   text;
    all_ids text[] := budget_id || spendcap_internal.ancestors(budget_id);
BEGIN
    IF cardinality(also) > 0 THEN
        -- SC001 for the first unknown budget: budget_id, then also in order (with no also, the
        -- caller's lock of budget_id says it).
        IF NOT EXISTS (SELECT FROM spendcap.budgets AS b WHERE b.budget_id = budget_id) THEN
            PERFORM spendcap_internal.budget_not_found(budget_id);
        END IF;
        FOREACH x IN ARRAY also LOOP
            IF NOT EXISTS (SELECT FROM spendcap.budgets AS b WHERE b.budget_id = x) THEN
                PERFORM spendcap_internal.budget_not_found(x, 'also_charge');
            END IF;
            all_ids := all_ids || x || spendcap_internal.ancestors(x);
        END LOOP;
    END IF;
    RETURN spendcap_internal.set_ids(all_ids);
END
$fn$;

-- set_outcome is the outcome of a charge to a set whose budgets (ids, ascending) evaluated to es:
-- the first budget in enforce mode with a hard breach refuses the charge (applied = false); else
-- the first hard breach (observe mode), else the first soft breach, else ok with the window of the
-- named budget (index named). breach_budget_id names the budget of a reported breach.
DROP FUNCTION IF EXISTS spendcap_internal.set_outcome;
CREATE FUNCTION spendcap_internal.set_outcome(es spendcap.reserve_outcome[], ids text[], named integer)
RETURNS spendcap.reserve_outcome
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    o    spendcap.reserve_outcome;
    best integer;
    rank integer := 3;
    r    integer;
BEGIN
    FOR i IN 1 .. cardinality(ids) LOOP
        r := CASE WHEN es[i].outcome = 'hard_breach' AND NOT es[i].applied THEN 0
                  WHEN es[i].outcome = 'hard_breach' THEN 1
                  WHEN es[i].outcome = 'soft_breach' THEN 2 ELSE 3 END;
        IF r < rank THEN
            rank := r;
            best := i;
        END IF;
    END LOOP;
    IF best IS NOT NULL THEN
        o := es[best];
        o.breach_budget_id := ids[best];
        RETURN o;
    END IF;
    RETURN es[named];
END
$fn$;

-- replay is what a live key remembers (docs/semantics.md#idempotency) for a call with
-- fingerprint fp: null when there is none (stored_fp null), the stored outcome (replayed) when it
-- was first used with the same fingerprint, SC003 naming key_arg otherwise. Callers read the key
-- (stored_fp, stored) under the lock of its budget, which every writer of its keys holds, so they
-- see every key committed before them.
DROP FUNCTION IF EXISTS spendcap_internal.replay;
CREATE FUNCTION spendcap_internal.replay(key_arg text, key text, fp text, stored_fp text, stored jsonb)
RETURNS spendcap.reserve_outcome
LANGUAGE plpgsql IMMUTABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    o spendcap.reserve_outcome;
BEGIN
    IF stored_fp IS NULL THEN
        RETURN NULL;
    END IF;
    IF stored_fp <> fp THEN
        RAISE EXCEPTION USING ERRCODE = 'SC003', MESSAGE = format(
            '%s: %s was first used with different arguments', key_arg, to_jsonb(key));
    END IF;
    o := jsonb_populate_record(NULL::spendcap.reserve_outcome, stored);
    o.replayed := true;
    RETURN o;
END
$fn$;

-- judge evaluates deltas d against every budget of a set (bs: locked, brought to the call's
-- instant, in ascending id order; named: the index of the budget the call named) and returns the
-- set's outcome o, each budget's own outcome es and the usage the deltas would leave on each
-- (afters). It writes nothing; SC004 (naming arg) before anything is applied. Callers apply: when
-- o is refused only the refusing budget's counters move (counted), else every budget's counters
-- and usage.
DROP FUNCTION IF EXISTS spendcap_internal.judge;
CREATE FUNCTION spendcap_internal.judge(bs spendcap.budgets[], d jsonb, arg text, named integer,
    OUT o spendcap.reserve_outcome, OUT es spendcap.reserve_outcome[], OUT afters jsonb[])
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    e   record;
    ids text[] := '{}';
BEGIN
    es := '{}';
    afters := '{}';
    FOR i IN 1 .. cardinality(bs) LOOP
        e := spendcap_internal.evaluate(bs[i], bs[i].reserved, d, arg, false);
        es := es || e.o;
        afters := afters || e.usage_after;
        ids := ids || bs[i].budget_id;
    END LOOP;
    o := spendcap_internal.set_outcome(es, ids, named);
END
$fn$;

-- admit is report_usage, record_spend and reserve (docs/semantics.md#admission, #idempotency,
-- #spend-and-reservations, #budget-sets), which differ only in where applied deltas go: usage,
-- usage and the execution ledger, or a new reservation. op is the public function's name; ref_id
-- the execution or reservation id. A budget alone is a set of one.
-- Locks the set's budgets rows in ascending id order. Writes: those rows; with a key one
-- dedup_keys row (on budget_id); record_spend one spend_ledger row and reserve one reservations
-- row per budget of the set.
DROP FUNCTION IF EXISTS spendcap_internal.admit;
CREATE FUNCTION spendcap_internal.admit(
    op text, budget_id text, ref_id text, deltas jsonb, dedup_key text, ttl_seconds integer, at timestamptz,
    also_charge text[])
RETURNS spendcap.reserve_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    deltas_arg text := CASE op WHEN 'reserve' THEN 'amounts' ELSE 'deltas' END;
    key_arg    text := CASE op WHEN 'report_usage' THEN 'dedup_key' ELSE 'idempotency_key' END;
    d          jsonb;
    key        text := nullif(dedup_key, '');
    t0         timestamptz;
    ids        text[];
    bs         spendcap.budgets[] := '{}';
    ts         timestamptz[] := '{}';
    es         spendcap.reserve_outcome[] := '{}';
    afters     jsonb[] := '{}';
    named      integer;
    refusing   integer;
    dims       text[];
    rem        jsonb := '{}';
    b          spendcap.budgets;
    t          timestamptz;
    fp         text;
    o          spendcap.reserve_outcome;
    also       text[];
    jd         record;
    stored     record;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    IF op = 'record_spend' THEN
        PERFORM spendcap_internal.check_id('execution_id', ref_id);
    ELSIF op = 'reserve' THEN
        PERFORM spendcap_internal.check_id('reservation_id', ref_id);
        PERFORM spendcap_internal.bounded('ttl_seconds', ttl_seconds, 1, 86400);
    END IF;
    d := spendcap_internal.quantities(deltas_arg, deltas, true);
    IF key IS NOT NULL THEN
        PERFORM spendcap_internal.check_id(key_arg, key);
    END IF;
    also := spendcap_internal.also_of(also_charge, budget_id);

    t0 := spendcap_internal.instant(at);
    -- Lock the set in ascending order. set_parent changes only a leaf's parent, under that leaf's
    -- lock: once the named budgets are locked their chains hold, so a second resolution is the last.
    FOR attempt IN 1 .. 2 LOOP
        ids := spendcap_internal.charged_set(budget_id, also);
        FOR i IN 1 .. cardinality(ids) LOOP
            IF NOT ids[i] = ANY (SELECT x.budget_id FROM unnest(bs) AS x) THEN
                bs := bs || spendcap_internal.lock_budget(ids[i], t0);
            END IF;
        END LOOP;
        EXIT WHEN ids = spendcap_internal.charged_set(budget_id, also);
    END LOOP;
    -- bs in the order of ids (the second round may have appended out of order).
    SELECT array_agg(x ORDER BY x.budget_id COLLATE "C") INTO bs FROM unnest(bs) AS x WHERE x.budget_id = ANY (ids);
    named := array_position(ids, budget_id);
    t := greatest(t0, bs[named].window_start);

    IF key IS NOT NULL THEN
        fp := spendcap_internal.fingerprint(op, ref_id, d, also);
        SELECT k.fingerprint, k.result INTO stored
          FROM spendcap.dedup_keys AS k
         WHERE k.budget_id = budget_id AND k.dedup_key = key AND k.expires_at > t;
        o := spendcap_internal.replay(key_arg, key, fp, stored.fingerprint, stored.result);
        -- (A row with null fields is not IS NOT NULL: test the field.)
        IF o.outcome IS NOT NULL THEN
            RETURN o;
        END IF;
    END IF;

    -- Live on the named budget, where the reservation is looked up: rows of an expired one may
    -- linger on budgets of its set that no call has brought past its expiry.
    IF op = 'reserve' AND EXISTS (SELECT 1 FROM spendcap.reservations AS r
                                  WHERE r.budget_id = budget_id AND r.named_id = budget_id
                                    AND r.reservation_id = ref_id AND r.expires_at > t) THEN
        PERFORM spendcap_internal.invalid_argument('reservation_id', format('reservation %s is live', to_jsonb(ref_id)));
    END IF;

    FOR i IN 1 .. cardinality(ids) LOOP
        ts := ts || greatest(t0, bs[i].window_start);
    END LOOP;
    SELECT * INTO jd FROM spendcap_internal.judge(bs, d, deltas_arg, named);
    o := jd.o;
    es := jd.es;
    afters := jd.afters;
    dims := spendcap_internal.keys_of(d);
    IF NOT o.applied THEN
        -- Refused: only the refusing budget's breach counters move.
        refusing := array_position(ids, o.breach_budget_id);
        b := spendcap_internal.counted(bs[refusing], o, ts[refusing]);
        b.updated_at := greatest(b.updated_at, ts[refusing]);
        PERFORM spendcap_internal.alert(bs[refusing], b, o, ts[refusing]);
        PERFORM spendcap_internal.save(b);
        FOR i IN 1 .. cardinality(ids) LOOP
            rem := spendcap_internal.remaining_into(rem, bs[i].hard_limits, bs[i].usage, bs[i].reserved, dims);
        END LOOP;
    ELSE
        IF op = 'reserve' THEN
            o.expires_at := t + make_interval(secs => ttl_seconds);
        END IF;
        FOR i IN 1 .. cardinality(ids) LOOP
            b := spendcap_internal.counted(bs[i], es[i], ts[i]);
            IF op = 'reserve' THEN
                -- A row left by an expired reservation of the same id is replaced (Lua: HSET).
                INSERT INTO spendcap.reservations (budget_id, named_id, reservation_id, amounts, expires_at)
                VALUES (ids[i], budget_id, ref_id, d, o.expires_at)
                ON CONFLICT ON CONSTRAINT reservations_pkey DO UPDATE SET amounts = EXCLUDED.amounts, expires_at = EXCLUDED.expires_at;
                b.reserved := spendcap_internal.plus(b.reserved, d);
                b.reservations_expire_at := least(b.reservations_expire_at, o.expires_at);
            ELSE
                b.usage := afters[i];
                IF op = 'record_spend' THEN
                    INSERT INTO spendcap.spend_ledger AS l (budget_id, named_id, execution_id, window_seq, amounts)
                    VALUES (ids[i], budget_id, ref_id, b.window_seq, d)
                    ON CONFLICT ON CONSTRAINT spend_ledger_pkey
                    DO UPDATE SET amounts = spendcap_internal.plus(l.amounts, excluded.amounts);
                END IF;
            END IF;
            b.updated_at := greatest(b.updated_at, ts[i]);
            PERFORM spendcap_internal.alert(bs[i], b, es[i], ts[i]);
            PERFORM spendcap_internal.save(b);
            rem := spendcap_internal.remaining_into(rem, b.hard_limits, b.usage, b.reserved, dims);
        END LOOP;
    END IF;
    o.remaining := rem;

    IF key IS NOT NULL THEN
        INSERT INTO spendcap.dedup_keys AS k (budget_id, dedup_key, fingerprint, result, expires_at)
        VALUES (budget_id, key, fp, to_jsonb(o), t + make_interval(secs => bs[named].dedup_ttl_seconds))
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
    RETURN ROW(o.outcome, o.applied, o.dimension, o.usage, o.limit_value, o.replayed, o.window_start, o.next_reset_at,
               o.breach_budget_id, o.remaining)::spendcap.usage_outcome;
END
$fn$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA spendcap_internal FROM PUBLIC;
