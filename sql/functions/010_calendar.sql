-- Calendar: zones, wall clocks and window boundaries from the anchor (docs/semantics.md#windows).
-- Conventions of every spendcap_internal file: 000_validation.sql.

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

-- series_bucket is the bucket of a usage series of width every ('1 hour' or '1 day') that holds
-- instant t in zone tz (docs/semantics.md#usage-series): the hour or the day of t's wall clock,
-- as default_anchor starts a window of that unit, and its end one unit later.
DROP FUNCTION IF EXISTS spendcap_internal.series_bucket;
CREATE FUNCTION spendcap_internal.series_bucket(every text, tz text, t timestamptz,
    OUT bucket_start timestamptz, OUT bucket_end timestamptz)
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    unit text := CASE every WHEN '1 hour' THEN 'hour' ELSE 'day' END;
BEGIN
    bucket_start := spendcap_internal.default_anchor(t, unit, tz);
    bucket_end := spendcap_internal.boundary(bucket_start, 1, unit, tz, 1);
END
$fn$;

-- series_kept is how long a usage series of width every keeps its closed buckets: 7 days of
-- hours, 90 days of days, in hours (days of an interval would follow the session's time zone).
DROP FUNCTION IF EXISTS spendcap_internal.series_kept;
CREATE FUNCTION spendcap_internal.series_kept(every text)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$SELECT CASE every WHEN '1 hour' THEN interval '168 hours' ELSE interval '2160 hours' END$$;
