-- Private helpers of the spendcap API (schema spendcap_internal). They are never granted to anyone:
-- the SECURITY DEFINER API functions call them as their owner, with the API functions' fixed
-- search_path (pg_catalog, pg_temp). They carry no SET clause of their own: a SET makes every call
-- save and restore the setting, which cost more than half of an admission, and keeps SQL helpers
-- from being inlined. Every name in them is schema-qualified all the same. SQL bodies are quoted strings, not
-- SQL-standard RETURN bodies: those record dependencies, which would block the DROP that starts
-- each definition when a file is re-applied. Pure helpers are IMMUTABLE or STABLE
-- so that the planner may fold them; none of them writes, except known_timezone's cache insert.

-- invalid_argument raises SC002 with a message that starts with the argument's name.
DROP FUNCTION IF EXISTS spendcap_internal.invalid_argument;
CREATE FUNCTION spendcap_internal.invalid_argument(arg text, problem text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC002', MESSAGE = arg || ': ' || problem;
END
$fn$;

-- check_id enforces docs/semantics.md#arguments for ids and keys: 1..128 bytes of 0x21..0x7E except { and }.
-- The braces are excluded because Valkey keys embed ids inside a {hash tag}.
DROP FUNCTION IF EXISTS spendcap_internal.check_id;
CREATE FUNCTION spendcap_internal.check_id(arg text, val text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- ASCII only, so characters are bytes. The length is checked apart: a bounded repetition
    -- ({1,128}) in the regular expression made this check cost 3.5 µs instead of 0.4.
    IF octet_length(val) <= 128 AND val ~ '^[!-z|~]+$' THEN
        RETURN;
    END IF;
    IF val IS NULL THEN
        PERFORM spendcap_internal.invalid_argument(arg, 'is required');
    END IF;
    PERFORM spendcap_internal.invalid_argument(arg,
        'must be 1..128 bytes of printable ASCII (0x21-0x7E) other than { and }');
END
$fn$;

-- in_time_range is the range of instants spendcap accepts (docs/semantics.md#time): from
-- 1970-01-01 to the end of 9999 UTC. Postgres alone would take infinity and years far past any
-- budget, then fail in window arithmetic with class-22 errors; Valkey would loop on them.
DROP FUNCTION IF EXISTS spendcap_internal.in_time_range;
CREATE FUNCTION spendcap_internal.in_time_range(v timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT v >= ''1970-01-01 00:00:00+00''::timestamptz AND v < ''10000-01-01 00:00:00+00''::timestamptz';

-- future_skew is how far past the server clock an `at` may lie for a caller who may not replay:
-- enough for clients whose clocks run a little ahead, far too little to open a window early.
DROP FUNCTION IF EXISTS spendcap_internal.future_skew;
CREATE FUNCTION spendcap_internal.future_skew()
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT interval ''5 seconds''';

-- may_replay tells whether the caller (the session's current role, not the functions' owner, which
-- SECURITY DEFINER makes current_user) is a member of spendcap_admin and so may pass any `at`.
DROP FUNCTION IF EXISTS spendcap_internal.may_replay;
CREATE FUNCTION spendcap_internal.may_replay()
RETURNS boolean
LANGUAGE sql STABLE
AS 'SELECT pg_catalog.pg_has_role(coalesce(nullif(pg_catalog.current_setting(''role''), ''none''), session_user::text),
                                  ''spendcap_admin'', ''MEMBER'')';

-- instant is the one rule for a call's `at` (docs/semantics.md#time): null means now(); an instant
-- outside in_time_range is refused; one later than the server clock plus future_skew is refused
-- unless the caller may replay, because a future `at` would let any writer open the next window
-- early or end another holder's lease. Earlier instants are allowed where the past cannot help
-- (usage never lands in a window before the budget's current one); acquire_quota passes
-- past_ok => false, since an entry or lease recorded in the past would count against nobody.
DROP FUNCTION IF EXISTS spendcap_internal.instant;
CREATE FUNCTION spendcap_internal.instant(at timestamptz, past_ok boolean DEFAULT true)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF at IS NULL THEN
        RETURN now();
    END IF;
    IF NOT spendcap_internal.in_time_range(at) THEN
        PERFORM spendcap_internal.invalid_argument('at', 'must be from 1970-01-01 to 9999-12-31 UTC');
    END IF;
    IF at > pg_catalog.clock_timestamp() + spendcap_internal.future_skew() AND NOT spendcap_internal.may_replay() THEN
        PERFORM spendcap_internal.invalid_argument('at',
            'is later than the server clock: only spendcap_admin may pass a future at (replays and tests)');
    END IF;
    IF NOT past_ok AND at < pg_catalog.clock_timestamp() - spendcap_internal.future_skew() AND NOT spendcap_internal.may_replay() THEN
        PERFORM spendcap_internal.invalid_argument('at',
            'is earlier than the server clock: only spendcap_admin may acquire a quota in the past (replays and tests)');
    END IF;
    RETURN at;
END
$fn$;

-- quantities validates a limits/deltas object (docs/semantics.md#arguments) and returns it normalised: every value a
-- JSON integer (1.0 and 1e3 are whole numbers and become 1 and 1000; 1.5 is refused).
DROP FUNCTION IF EXISTS spendcap_internal.quantities;
CREATE FUNCTION spendcap_internal.quantities(arg text, obj jsonb, required boolean)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    k text;
    v jsonb;
    q numeric;
    n integer := 0;
    ok boolean;
    normalised jsonb := '{}';
BEGIN
    -- Fast path: one query checks every entry and normalises; the loop below only runs to name
    -- the first problem.
    IF jsonb_typeof(obj) = 'object' THEN
        SELECT count(*),
               coalesce(bool_and(octet_length(e.key) <= 64 AND e.key ~ '^[A-Za-z0-9_.:-]+$' AND CASE WHEN jsonb_typeof(e.value) = 'number'
                   THEN e.value::numeric BETWEEN 0 AND 9007199254740991 AND e.value::numeric = trunc(e.value::numeric)
                   ELSE false END), true),
               -- The cast only where it cannot fail (1e19 would raise bigint out of range).
               coalesce(jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'number' AND e.value::numeric BETWEEN 0 AND 9007199254740991
                   THEN e.value::numeric::bigint END), '{}')
          INTO n, ok, normalised
          FROM jsonb_each(obj) AS e;
        IF ok AND n <= 32 AND (n > 0 OR NOT required) THEN
            RETURN normalised;
        END IF;
        n := 0;
        normalised := '{}';
    END IF;
    IF obj IS NULL OR jsonb_typeof(obj) <> 'object' THEN
        PERFORM spendcap_internal.invalid_argument(arg, 'must be a JSON object of dimension -> quantity');
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(obj) AS e LOOP
        n := n + 1;
        IF n > 32 THEN
            PERFORM spendcap_internal.invalid_argument(arg, 'at most 32 dimensions');
        END IF;
        IF octet_length(k) NOT BETWEEN 1 AND 64 OR k !~ '^[A-Za-z0-9_.:-]+$' THEN
            PERFORM spendcap_internal.invalid_argument(arg,
                format('dimension name %s must be 1..64 bytes of [A-Za-z0-9_.:-]', to_jsonb(k)));
        END IF;
        IF jsonb_typeof(v) <> 'number' THEN
            PERFORM spendcap_internal.invalid_argument(arg,
                format('%s must be an integer 0..9007199254740991', to_jsonb(k)));
        END IF;
        q := v::numeric;
        IF q < 0 OR q > 9007199254740991 OR q <> trunc(q) THEN
            PERFORM spendcap_internal.invalid_argument(arg,
                format('%s must be an integer 0..9007199254740991', to_jsonb(k)));
        END IF;
        normalised := normalised || jsonb_build_object(k, q::bigint);
    END LOOP;
    IF required AND n = 0 THEN
        PERFORM spendcap_internal.invalid_argument(arg, 'must have at least one dimension');
    END IF;
    RETURN normalised;
END
$fn$;

-- parse_period reads a reset period "<n> <unit>" (docs/semantics.md#arguments) into n, the singular unit and the
-- canonical text ("1 month", "15 minutes").
DROP FUNCTION IF EXISTS spendcap_internal.parse_period;
CREATE FUNCTION spendcap_internal.parse_period(period text, OUT n integer, OUT unit text, OUT canonical text)
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    m text[];
BEGIN
    m := regexp_match(lower(period), '^\s*([0-9]{1,5})\s+(second|minute|hour|day|week|month|year)s?\s*$');
    IF m IS NULL OR m[1]::integer NOT BETWEEN 1 AND 10000 THEN
        PERFORM spendcap_internal.invalid_argument('reset_every',
            'must be "<n> <unit>" with n in 1..10000 and unit one of second, minute, hour, day, week, month, year');
    END IF;
    n := m[1]::integer;
    unit := m[2];
    canonical := n || ' ' || unit || CASE WHEN n = 1 THEN '' ELSE 's' END;
END
$fn$;

-- known_timezone validates reset_timezone: UTC, a fixed offset +HH:MM/-HH:MM up to 14:00, or an IANA
-- name exactly as this server's zone database spells it. Names found once are cached, because
-- pg_timezone_names reads the whole zone directory (~30 ms).
DROP FUNCTION IF EXISTS spendcap_internal.known_timezone;
CREATE FUNCTION spendcap_internal.known_timezone(tz text)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF tz = 'UTC' THEN
        RETURN;
    END IF;
    IF tz ~ '^[+-][0-9][0-9]:[0-5][0-9]$' THEN
        IF substr(tz, 2, 2)::integer * 60 + substr(tz, 5, 2)::integer > 14 * 60 THEN
            PERFORM spendcap_internal.invalid_argument('reset_timezone', 'a fixed offset must be within -14:00..+14:00');
        END IF;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM spendcap_internal.known_timezones WHERE name = tz) THEN
        RETURN;
    END IF;
    IF tz IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = tz) THEN
        PERFORM spendcap_internal.invalid_argument('reset_timezone',
            format('%s is not UTC, a fixed offset +HH:MM/-HH:MM, or an IANA time zone known to this server', coalesce(to_jsonb(tz), 'null')));
    END IF;
    INSERT INTO spendcap_internal.known_timezones (name) VALUES (tz) ON CONFLICT DO NOTHING;
END
$fn$;

-- to_local gives the wall-clock time of instant t in zone tz.
DROP FUNCTION IF EXISTS spendcap_internal.to_local;
CREATE FUNCTION spendcap_internal.to_local(t timestamptz, tz text)
RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN CASE WHEN tz ~ '^[+-]' THEN t AT TIME ZONE tz::interval ELSE t AT TIME ZONE tz END;
END
$fn$;

-- from_local gives the instant of wall-clock time l in zone tz. A time in a DST gap takes the offset
-- in force before the transition, an ambiguous one the offset after it (docs/semantics.md#windows; PostgreSQL's rule).
DROP FUNCTION IF EXISTS spendcap_internal.from_local;
CREATE FUNCTION spendcap_internal.from_local(l timestamp, tz text)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN CASE WHEN tz ~ '^[+-]' THEN l AT TIME ZONE tz::interval ELSE l AT TIME ZONE tz END;
END
$fn$;

-- default_anchor is the start of the unit containing t in zone tz (docs/semantics.md#windows). Elapsed units subtract
-- the wall-clock part below the unit, so the anchor is never after t even inside a DST overlap;
-- calendar units convert the truncated wall-clock time back with from_local.
DROP FUNCTION IF EXISTS spendcap_internal.default_anchor;
CREATE FUNCTION spendcap_internal.default_anchor(t timestamptz, unit text, tz text)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    l timestamp := spendcap_internal.to_local(t, tz);
BEGIN
    IF unit IN ('second', 'minute', 'hour') THEN
        RETURN t - (l - date_trunc(unit, l));
    END IF;
    RETURN spendcap_internal.from_local(date_trunc(unit, l), tz);
END
$fn$;

-- boundary computes B_k = anchor + k·n·unit (docs/semantics.md#windows): elapsed units in exact seconds, calendar
-- units as one calendar addition to the anchor's wall-clock time (so Jan 31 + 1 month = Feb 28).
DROP FUNCTION IF EXISTS spendcap_internal.boundary;
CREATE FUNCTION spendcap_internal.boundary(anchor timestamptz, n integer, unit text, tz text, k bigint)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN CASE unit
        WHEN 'second' THEN anchor + make_interval(secs => (k * n)::double precision)
        WHEN 'minute' THEN anchor + make_interval(secs => (k * n * 60)::double precision)
        WHEN 'hour'   THEN anchor + make_interval(secs => (k * n * 3600)::double precision)
        WHEN 'day'    THEN spendcap_internal.from_local(spendcap_internal.to_local(anchor, tz) + make_interval(days => (k * n)::integer), tz)
        WHEN 'week'   THEN spendcap_internal.from_local(spendcap_internal.to_local(anchor, tz) + make_interval(days => (k * n * 7)::integer), tz)
        WHEN 'month'  THEN spendcap_internal.from_local(spendcap_internal.to_local(anchor, tz) + make_interval(months => (k * n)::integer), tz)
        WHEN 'year'   THEN spendcap_internal.from_local(spendcap_internal.to_local(anchor, tz) + make_interval(years => (k * n)::integer), tz)
    END;
END
$fn$;

-- window_of finds the scheduled window containing instant t (docs/semantics.md#windows): k = -1 and
-- [created_at, B_0) before the anchor, else [B_k, B_k+1) with B_k <= t < B_k+1.
DROP FUNCTION IF EXISTS spendcap_internal.window_of;
CREATE FUNCTION spendcap_internal.window_of(
    anchor timestamptz, n integer, unit text, tz text, created_at timestamptz, t timestamptz,
    OUT k bigint, OUT window_start timestamptz, OUT next_reset_at timestamptz)
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    la timestamp;
    lt timestamp;
BEGIN
    IF t < anchor THEN
        k := -1;
        window_start := created_at;
        next_reset_at := anchor;
        RETURN;
    END IF;
    IF unit IN ('second', 'minute', 'hour') THEN
        k := floor(extract(epoch FROM t - anchor)
                   / (n * CASE unit WHEN 'second' THEN 1 WHEN 'minute' THEN 60 ELSE 3600 END))::bigint;
    ELSE
        -- Estimate k from the wall clocks, then step to the exact boundary: DST and month lengths
        -- move the estimate by at most one period.
        la := spendcap_internal.to_local(anchor, tz);
        lt := spendcap_internal.to_local(t, tz);
        k := CASE unit
            WHEN 'day'   THEN floor((lt::date - la::date)::numeric / n)
            WHEN 'week'  THEN floor((lt::date - la::date)::numeric / (7 * n))
            WHEN 'month' THEN floor(((extract(year FROM lt) - extract(year FROM la)) * 12
                                     + extract(month FROM lt) - extract(month FROM la)) / n)
            ELSE floor((extract(year FROM lt) - extract(year FROM la)) / n)
        END::bigint;
        k := greatest(k, 0);
    END IF;
    -- At most a step or two each way; the bound is the loop's, not the input's.
    FOR i IN 1 .. 3 LOOP
        EXIT WHEN spendcap_internal.boundary(anchor, n, unit, tz, k + 1) > t;
        k := k + 1;
    END LOOP;
    FOR i IN 1 .. 3 LOOP
        EXIT WHEN k <= 0 OR spendcap_internal.boundary(anchor, n, unit, tz, k) <= t;
        k := k - 1;
    END LOOP;
    window_start := spendcap_internal.boundary(anchor, n, unit, tz, k);
    next_reset_at := spendcap_internal.boundary(anchor, n, unit, tz, k + 1);
END
$fn$;

-- advanced returns budget b as of instant t: unchanged while t is inside its window, else rolled to
-- the window containing t (docs/semantics.md#windows, exact lazy roll: any number of missed periods is one roll).
-- window_seq counts closed windows that had usage or breaches, so it is the same whenever and
-- however often rolls are materialised. It writes nothing; writers close the old window into
-- history (close_window skips an empty one).
DROP FUNCTION IF EXISTS spendcap_internal.advanced;
CREATE FUNCTION spendcap_internal.advanced(b spendcap.budgets, t timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    w record;
BEGIN
    IF b.next_reset_at IS NULL OR t < b.next_reset_at THEN
        RETURN b;
    END IF;
    w := spendcap_internal.window_of(b.reset_anchor, b.reset_n, b.reset_unit, b.reset_timezone, b.created_at, t);
    -- Only a window with usage or breaches counts: closing an empty one (the roll job does so every
    -- period for idle budgets) must not move window_seq, or it would depend on when rolls happen.
    IF b.usage <> '{}' OR b.window_breach_count > 0 OR b.window_soft_breach_count > 0 THEN
        b.window_seq := b.window_seq + 1;
    END IF;
    b.window_k := w.k;
    b.window_start := w.window_start;
    b.next_reset_at := w.next_reset_at;
    b.usage := '{}';
    b.window_breach_count := 0;
    b.window_soft_breach_count := 0;
    b.last_breach_at := NULL;
    b.last_breach_dim := NULL;
    RETURN b;
END
$fn$;

-- live_reserved sums the reservations of budget b still live at t. The aggregate kept on the row is
-- exact until its earliest expiry, so the reservations table is read only after one has expired.
DROP FUNCTION IF EXISTS spendcap_internal.live_reserved;
CREATE FUNCTION spendcap_internal.live_reserved(b spendcap.budgets, t timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    IF b.reservations_expire_at IS NULL OR t < b.reservations_expire_at THEN
        RETURN b.reserved;
    END IF;
    RETURN coalesce((
        SELECT jsonb_object_agg(d.key, d.total)
        FROM (SELECT a.key, sum(a.value::numeric)::bigint AS total
              FROM spendcap.reservations r, jsonb_each(r.amounts) AS a
              WHERE r.budget_id = b.budget_id AND r.expires_at > t
              GROUP BY a.key) d
        WHERE d.total <> 0), '{}');
END
$fn$;

-- status_row renders budget b (already advanced to t) as the budget_status result (docs/semantics.md#reading-a-budget).
DROP FUNCTION IF EXISTS spendcap_internal.status_row;
CREATE FUNCTION spendcap_internal.status_row(b spendcap.budgets, t timestamptz)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    r spendcap.budget_status_result;
    reserved jsonb := spendcap_internal.live_reserved(b, t);
BEGIN
    r.budget_id := b.budget_id;
    r.hard_limits := b.hard_limits;
    r.soft_limits := b.soft_limits;
    r.reset_every := b.reset_every;
    r.reset_timezone := b.reset_timezone;
    r.reset_anchor := b.reset_anchor;
    r.mode := b.mode;
    r.scope_type := b.scope_type;
    r.scope_id := b.scope_id;
    r.dedup_ttl_seconds := b.dedup_ttl_seconds;
    r.window_seq := b.window_seq;
    r.window_start := b.window_start;
    r.next_reset_at := b.next_reset_at;
    r.usage := b.usage;
    r.reserved := reserved;
    r.remaining := coalesce((
        SELECT jsonb_object_agg(h.key, greatest(0, h.value::bigint
                                                  - coalesce((b.usage ->> h.key)::bigint, 0)
                                                  - coalesce((reserved ->> h.key)::bigint, 0)))
        FROM jsonb_each(b.hard_limits) AS h), '{}');
    r.breach_count := b.breach_count;
    r.soft_breach_count := b.soft_breach_count;
    r.window_breach_count := b.window_breach_count;
    r.window_soft_breach_count := b.window_soft_breach_count;
    r.last_breach_at := b.last_breach_at;
    r.last_breach_dim := b.last_breach_dim;
    r.created_at := b.created_at;
    r.updated_at := b.updated_at;
    RETURN r;
END
$fn$;

-- budget_not_found raises SC001.
DROP FUNCTION IF EXISTS spendcap_internal.budget_not_found;
CREATE FUNCTION spendcap_internal.budget_not_found(budget_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC001', MESSAGE = format('budget_id: budget %s not found', to_jsonb(budget_id));
END
$fn$;

-- plus adds quantities per dimension, keeping only non-zero results (docs/semantics.md#budgets: objects list only
-- dimensions whose value is not 0).
DROP FUNCTION IF EXISTS spendcap_internal.plus;
CREATE FUNCTION spendcap_internal.plus(a jsonb, b jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(k, v), '{}')
        FROM (SELECT k, sum(v) AS v
              FROM (SELECT e.key AS k, e.value::bigint AS v FROM jsonb_each(a) e
                    UNION ALL
                    SELECT e.key, e.value::bigint FROM jsonb_each(b) e) x
              GROUP BY k) y
        WHERE v <> 0);
END
$fn$;

-- minus subtracts b from a per dimension, clamped at 0, keeping only non-zero results.
DROP FUNCTION IF EXISTS spendcap_internal.minus;
CREATE FUNCTION spendcap_internal.minus(a jsonb, b jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(e.key, greatest(0, e.value::bigint - coalesce((b ->> e.key)::bigint, 0)))
                            FILTER (WHERE e.value::bigint - coalesce((b ->> e.key)::bigint, 0) > 0), '{}')
        FROM jsonb_each(a) e);
END
$fn$;

-- nonzero drops the dimensions whose quantity is 0.
DROP FUNCTION IF EXISTS spendcap_internal.nonzero;
CREATE FUNCTION spendcap_internal.nonzero(a jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(e.key, e.value) FILTER (WHERE e.value::bigint <> 0), '{}') FROM jsonb_each(a) e);
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
        IF totals[i] + adds[i] > 9007199254740991 THEN
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

-- close_window records the window of b that ends at window_end in the history, unless it had no
-- usage and no breaches (docs/semantics.md#windows).
DROP FUNCTION IF EXISTS spendcap_internal.close_window;
CREATE FUNCTION spendcap_internal.close_window(b spendcap.budgets, window_end timestamptz, closed_by text)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF b.usage <> '{}' OR b.window_breach_count > 0 OR b.window_soft_breach_count > 0 THEN
        INSERT INTO spendcap.budget_history
            (budget_id, window_seq, window_start, window_end, usage, breach_count, soft_breach_count, closed_by)
        VALUES (b.budget_id, b.window_seq, b.window_start, window_end, b.usage,
                b.window_breach_count, b.window_soft_breach_count, closed_by);
    END IF;
END
$fn$;

-- save writes the mutable state of b back to its row.
DROP FUNCTION IF EXISTS spendcap_internal.save;
CREATE FUNCTION spendcap_internal.save(b spendcap.budgets)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    UPDATE spendcap.budgets AS x SET
        hard_limits = b.hard_limits, soft_limits = b.soft_limits, mode = b.mode, updated_at = b.updated_at,
        window_seq = b.window_seq, window_k = b.window_k, window_start = b.window_start,
        next_reset_at = b.next_reset_at, usage = b.usage, reserved = b.reserved,
        reservations_expire_at = b.reservations_expire_at, breach_count = b.breach_count,
        soft_breach_count = b.soft_breach_count, window_breach_count = b.window_breach_count,
        window_soft_breach_count = b.window_soft_breach_count, last_breach_at = b.last_breach_at,
        last_breach_dim = b.last_breach_dim
    WHERE x.budget_id = b.budget_id;
END
$fn$;

-- lock_budget locks budget_id's row and brings it to the call's instant t = greatest(at,
-- window_start), where at has been through instant() (callers compute the same t from the
-- returned row): a due window is closed into
-- history and rolled, expired reservations are dropped and the reserved aggregate recomputed. It
-- saves the row only when one of those happened. SC001 when the budget does not exist.
-- Locks one budgets row; on a roll writes one history row.
DROP FUNCTION IF EXISTS spendcap_internal.lock_budget;
CREATE FUNCTION spendcap_internal.lock_budget(budget_id text, at timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b      spendcap.budgets;
    t      timestamptz;
    rolled spendcap.budgets;
BEGIN
    SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = budget_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.budget_not_found(budget_id);
    END IF;
    t := greatest(at, b.window_start);
    IF (b.next_reset_at IS NULL OR t < b.next_reset_at)
       AND (b.reservations_expire_at IS NULL OR t < b.reservations_expire_at) THEN
        RETURN b;
    END IF;
    rolled := spendcap_internal.advanced(b, t);
    IF rolled.next_reset_at IS DISTINCT FROM b.next_reset_at THEN
        PERFORM spendcap_internal.close_window(b, b.next_reset_at, 'schedule');
    END IF;
    IF rolled.reservations_expire_at <= t THEN
        DELETE FROM spendcap.reservations AS r WHERE r.budget_id = b.budget_id AND r.expires_at <= t;
        rolled.reserved := spendcap_internal.live_reserved(rolled, t);
        rolled.reservations_expire_at := (SELECT min(r.expires_at) FROM spendcap.reservations AS r WHERE r.budget_id = b.budget_id);
    END IF;
    PERFORM spendcap_internal.save(rolled);
    RETURN rolled;
END
$fn$;

-- take_reservation ends a live reservation of budget_id (its budget row locked and brought to the
-- call's instant by lock_budget, so expired ones are gone) and returns its amounts; SC007 when it is
-- unknown, expired or already finished. Deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap_internal.take_reservation;
CREATE FUNCTION spendcap_internal.take_reservation(budget_id text, reservation_id text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    amounts jsonb;
BEGIN
    DELETE FROM spendcap.reservations AS r
     WHERE r.budget_id = budget_id AND r.reservation_id = reservation_id
    RETURNING r.amounts INTO amounts;
    IF amounts IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SC007', MESSAGE = format(
            'reservation_id: reservation %s is unknown, expired or already finished', to_jsonb(reservation_id));
    END IF;
    RETURN amounts;
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
        fp := op || ' ' || coalesce(ref_id, '') || ' ' || d::text;
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
    -- Only what an admission changes; lock_budget has saved any roll.
    UPDATE spendcap.budgets AS x SET
        usage = b.usage, reserved = b.reserved, reservations_expire_at = b.reservations_expire_at,
        breach_count = b.breach_count, soft_breach_count = b.soft_breach_count,
        window_breach_count = b.window_breach_count, window_soft_breach_count = b.window_soft_breach_count,
        last_breach_at = b.last_breach_at, last_breach_dim = b.last_breach_dim, updated_at = b.updated_at
    WHERE x.budget_id = b.budget_id;

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
