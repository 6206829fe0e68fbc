-- Quantities: validating limits and deltas objects, and arithmetic on them (docs/semantics.md#arguments).
-- Conventions of every spendcap_internal file: 000_validation.sql.

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
