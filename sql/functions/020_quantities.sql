-- Quantities: validating limits and deltas objects, and arithmetic on them (docs/semantics.md#arguments).
-- Conventions of every spendcap_internal file: 000_validation.sql.

-- max_qty is the largest quantity (2^53 - 1, exact in every client's doubles). This and the rules
-- below are SQL functions the planner inlines: every path reads the one definition at no cost.
DROP FUNCTION IF EXISTS spendcap_internal.max_qty;
CREATE FUNCTION spendcap_internal.max_qty()
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT 9007199254740991::bigint';

-- is_dimension is the rule for a dimension name: 1..64 bytes of [A-Za-z0-9_.:-].
DROP FUNCTION IF EXISTS spendcap_internal.is_dimension;
CREATE FUNCTION spendcap_internal.is_dimension(k text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT octet_length(k) <= 64 AND k ~ ''^[A-Za-z0-9_.:-]+$''';

-- is_quantity is the rule for a quantity: a whole number 0..max_qty, however written (1.0, 1e3).
DROP FUNCTION IF EXISTS spendcap_internal.is_quantity;
CREATE FUNCTION spendcap_internal.is_quantity(q numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT q BETWEEN 0 AND spendcap_internal.max_qty() AND q = trunc(q)';

-- room is the largest total a budget takes in dimension dim without any breach: its hard and soft
-- limits there, and max_qty. The report_usage fast path stays on it only while every new total
-- fits; evaluate tests the same three bounds one by one to name the breach.
DROP FUNCTION IF EXISTS spendcap_internal.room;
CREATE FUNCTION spendcap_internal.room(hard_limits jsonb, soft_limits jsonb, dim text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT least(spendcap_internal.max_qty(), (hard_limits ->> dim)::bigint, (soft_limits ->> dim)::bigint)';

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
               coalesce(bool_and(spendcap_internal.is_dimension(e.key) AND CASE WHEN jsonb_typeof(e.value) = 'number'
                   THEN spendcap_internal.is_quantity(e.value::numeric) ELSE false END), true),
               -- The cast only where it cannot fail (1e19 would raise bigint out of range).
               coalesce(jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'number'
                   AND e.value::numeric BETWEEN 0 AND spendcap_internal.max_qty() THEN e.value::numeric::bigint END), '{}')
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
        IF NOT coalesce(spendcap_internal.is_dimension(k), false) THEN
            PERFORM spendcap_internal.invalid_argument(arg,
                format('dimension name %s must be 1..64 bytes of [A-Za-z0-9_.:-]', to_jsonb(k)));
        END IF;
        IF jsonb_typeof(v) <> 'number' THEN
            PERFORM spendcap_internal.invalid_argument(arg,
                format('%s must be an integer 0..9007199254740991', to_jsonb(k)));
        END IF;
        q := v::numeric;
        IF NOT spendcap_internal.is_quantity(q) THEN
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

-- add_usage adds quantities qs in dimensions dims (a delta per dimension, each once) to usage,
-- keeping only non-zero totals: the one addition of every path that applies deltas it holds as
-- arrays (the fast paths, batches, evaluate). A loop of simple expressions, which PL/pgSQL runs
-- without the executor, unlike plus's query: the fast paths ran this loop inline before.
DROP FUNCTION IF EXISTS spendcap_internal.add_usage;
CREATE FUNCTION spendcap_internal.add_usage(usage jsonb, dims text[], qs bigint[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
DECLARE
    q bigint;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(dims), 0) LOOP
        q := coalesce((usage ->> dims[i])::bigint, 0) + qs[i];
        IF q <> 0 THEN
            usage := usage || jsonb_build_object(dims[i], q);
        END IF;
    END LOOP;
    RETURN usage;
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

-- difference subtracts b from a per dimension, signed, keeping only non-zero results: a usage
-- series bucket's usage (docs/semantics.md#usage-series), which a release can make negative. It is
-- plus with b negated.
DROP FUNCTION IF EXISTS spendcap_internal.difference;
CREATE FUNCTION spendcap_internal.difference(a jsonb, b jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN spendcap_internal.plus(a, (SELECT coalesce(jsonb_object_agg(e.key, -(e.value::bigint)), '{}') FROM jsonb_each(b) AS e));
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

-- share is the part of hard limit h that used (usage plus reserved) takes, in thousandths rounded
-- down, at most 999999: the unit of a budget's utilisation (list_budgets' order and filters). A
-- limit of 0 is full (1000) while nothing is used, past full (999999) once something is. Doubles,
-- divided then multiplied, as Lua computes it, so both backends round alike.
DROP FUNCTION IF EXISTS spendcap_internal.share;
CREATE FUNCTION spendcap_internal.share(used bigint, h bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT CASE WHEN h > 0 THEN least(floor(used::float8 / h::float8 * 1000), 999999)::integer
                WHEN used > 0 THEN 999999 ELSE 1000 END
$fn$;

-- utilisation is the budget's highest share of any hard limit (usage plus reserved), null without a
-- hard limit: what the utilisation_permille column stores for every current window. save and
-- create_budget compute it whole; the fast paths raise it by what they charge (raised_utilisation).
DROP FUNCTION IF EXISTS spendcap_internal.utilisation;
CREATE FUNCTION spendcap_internal.utilisation(hard_limits jsonb, usage jsonb, reserved jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT max(spendcap_internal.share(coalesce((usage ->> h.key)::bigint, 0) + coalesce((reserved ->> h.key)::bigint, 0),
                                       h.value::bigint))
      FROM jsonb_each_text(hard_limits) AS h
$fn$;

-- raised_utilisation is a budget's stored utilisation u after its usage grew in dims only (usage
-- is the new usage): only those dimensions' shares changed, and only upwards, so the fast paths
-- need not read every limit. A loop of simple expressions (no executor), like add_usage.
DROP FUNCTION IF EXISTS spendcap_internal.raised_utilisation;
CREATE FUNCTION spendcap_internal.raised_utilisation(u integer, hard_limits jsonb, reserved jsonb, usage jsonb, dims text[])
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
DECLARE
    h bigint;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(dims), 0) LOOP
        h := (hard_limits ->> dims[i])::bigint;
        IF h IS NOT NULL THEN
            u := greatest(u, spendcap_internal.share(coalesce((usage ->> dims[i])::bigint, 0)
                                                     + coalesce((reserved ->> dims[i])::bigint, 0), h));
        END IF;
    END LOOP;
    RETURN u;
END
$fn$;

-- near_permille is the utilisation from which a budget is near a limit: its lowest alert percent
-- (they are stored ascending), or 80% of a hard limit, whichever comes first. Inlined.
DROP FUNCTION IF EXISTS spendcap_internal.near_permille;
CREATE FUNCTION spendcap_internal.near_permille(alert_percents integer[])
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT 10 * least(80, alert_percents[1])';
