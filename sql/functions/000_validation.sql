-- Private helpers of the spendcap API (schema spendcap_internal), in files by concept: validation
-- (this file), calendar, quantities, budget row, admission; valkey/lua mirrors them by name.
-- They are never granted to anyone: the API functions (behind the SECURITY DEFINER entry points) call them as their owner, with the entry points' fixed
-- search_path (pg_catalog, pg_temp). They carry no SET clause of their own: a SET makes every call
-- save and restore the setting, which cost more than half of an admission, and keeps SQL helpers
-- from being inlined. Every name in them is schema-qualified all the same. SQL bodies are quoted strings, not
-- SQL-standard RETURN bodies: those record dependencies, which would block the DROP that starts
-- each definition when a file is re-applied. Pure helpers are IMMUTABLE or STABLE
-- so that the planner may fold them; none of them writes, except known_timezone's cache insert.

-- Validation: ids, instants and periods (docs/semantics.md#arguments, #time).

-- is_id is the id rule (docs/semantics.md#arguments): 1..128 bytes of printable ASCII other than {
-- and } (ASCII only, so characters are bytes). The length is tested apart: a bounded repetition
-- ({1,128}) in the regular expression cost 3.5 µs instead of 0.4. A SQL function the planner
-- inlines, so the report_usage fast path reads the same rule at no cost; null for a null id.
DROP FUNCTION IF EXISTS spendcap_internal.is_id;
CREATE FUNCTION spendcap_internal.is_id(v text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT octet_length(v) <= 128 AND v ~ ''^[!-z|~]+$''';

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
    IF spendcap_internal.is_id(val) THEN
        RETURN;
    END IF;
    IF val IS NULL THEN
        PERFORM spendcap_internal.invalid_argument(arg, 'is required');
    END IF;
    PERFORM spendcap_internal.invalid_argument(arg,
        'must be 1..128 bytes of printable ASCII (0x21-0x7E) other than { and }');
END
$fn$;

-- bounded returns integer argument v, named arg, when it lies in lo..hi, and raises SC002 naming
-- arg otherwise (null included).
DROP FUNCTION IF EXISTS spendcap_internal.bounded;
CREATE FUNCTION spendcap_internal.bounded(arg text, v integer, lo integer, hi integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF v NOT BETWEEN lo AND hi OR v IS NULL THEN
        PERFORM spendcap_internal.invalid_argument(arg, format('must be %s..%s', lo, hi));
    END IF;
    RETURN v;
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

-- series_every_of reads a usage_series argument named arg (docs/semantics.md#usage-series): "1 hour" or
-- "1 day" in the syntax of a reset period, returned in that canonical form; off_ok also takes
-- "off" (set_limits), returned as 'off'. Null stays null.
DROP FUNCTION IF EXISTS spendcap_internal.series_every_of;
CREATE FUNCTION spendcap_internal.series_every_of(arg text, v text, off_ok boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    m text[];
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF off_ok AND lower(v) ~ '^\s*off\s*$' THEN
        RETURN 'off';
    END IF;
    m := regexp_match(lower(v), '^\s*1\s+(hour|day)s?\s*$');
    IF m IS NULL THEN
        PERFORM spendcap_internal.invalid_argument(arg,
            CASE WHEN off_ok THEN 'must be "1 hour", "1 day" or "off"' ELSE 'must be "1 hour" or "1 day"' END);
    END IF;
    RETURN '1 ' || m[1];
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
