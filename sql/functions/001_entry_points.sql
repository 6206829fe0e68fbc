-- Entry points (docs/operations.md, "Releases and upgrades"). Every API function in schema spendcap
-- is a small SECURITY DEFINER wrapper of its implementation of the same name in spendcap_internal.
-- The implementations are re-created by every release that changes them; a wrapper is re-created
-- only when its signature changes (990_entry_points.sql lists them), so a release leaves the
-- callers' prepared statements alone: a `SELECT *` prepared before a release that adds a result
-- column keeps its columns instead of failing once with 0A000 ("cached plan must not change result
-- type").
--
-- The deploy gate. A wrapper first reads spendcap.deploy_gate (no row, no scan) and so takes a
-- share lock on it for the rest of the caller's transaction; `migrate up` takes it exclusively
-- before it changes anything. The deploy waits for the transactions that are running spendcap code
-- to end, calls arriving meanwhile wait at the gate, outside any implementation, and then run the
-- new release: taking the lock makes them read the catalog changes the deploy committed. Without the
-- gate a call blocked inside an old implementation would resume there and meet the new types
-- (42804).

-- entry_point_body is the body of the wrapper of spendcap_internal.<name> with nargs arguments.
DROP FUNCTION IF EXISTS spendcap_internal.entry_point_body;
CREATE FUNCTION spendcap_internal.entry_point_body(name text, nargs integer, returns_set boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT pg_catalog.format(E'\nBEGIN\n    PERFORM FROM spendcap.deploy_gate WHERE false;\n    %s spendcap_internal.%I(%s);\nEND\n',
        CASE WHEN returns_set THEN 'RETURN QUERY SELECT * FROM' ELSE 'RETURN' END, name,
        coalesce((SELECT pg_catalog.string_agg('$' || i, ', ' ORDER BY i) FROM pg_catalog.generate_series(1, nargs) AS i), ''))
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.entry_point_body FROM PUBLIC;

-- ensure_entry_point makes spendcap.<name>(args) RETURNS result, of volatility v ('v', 's' or 'i'),
-- executable by grantee alone, call spendcap_internal.<name> with the same arguments. args and
-- result are written as pg_get_function_arguments and pg_get_function_result print them. A wrapper
-- that already reads so is left untouched (not even granted again: any change to its catalog row
-- would make the callers' prepared statements plan again); another one is dropped and created.
-- Returns whether it created the wrapper.
DROP FUNCTION IF EXISTS spendcap_internal.ensure_entry_point;
CREATE FUNCTION spendcap_internal.ensure_entry_point(name text, args text, result text, v "char", grantee text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    impl   pg_catalog.pg_proc;
    f      oid;
    body   text;
BEGIN
    SELECT p.* INTO impl FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'spendcap_internal'::regnamespace AND p.proname = ensure_entry_point.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'entry point spendcap.%: no implementation spendcap_internal.%', name, name;
    END IF;
    body := spendcap_internal.entry_point_body(name, impl.pronargs, impl.proretset);
    SELECT p.oid INTO f FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'spendcap'::regnamespace AND p.proname = ensure_entry_point.name;
    IF f IS NOT NULL THEN
        IF (SELECT pg_catalog.pg_get_function_arguments(p.oid) = args AND pg_catalog.pg_get_function_result(p.oid) = result
                   AND p.provolatile = v AND p.prosrc = body AND p.prosecdef
              FROM pg_catalog.pg_proc AS p WHERE p.oid = f)
           AND pg_catalog.has_function_privilege(grantee, f, 'EXECUTE') THEN
            RETURN false;
        END IF;
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f::regprocedure);
    END IF;
    EXECUTE pg_catalog.format('CREATE FUNCTION spendcap.%I(%s) RETURNS %s LANGUAGE plpgsql %s SECURITY DEFINER '
                              'SET search_path = pg_catalog, pg_temp AS %L',
        name, args, result, CASE v WHEN 'v' THEN 'VOLATILE' WHEN 's' THEN 'STABLE' ELSE 'IMMUTABLE' END, body);
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION spendcap.%I FROM PUBLIC', name);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION spendcap.%I TO %I', name, grantee);
    RETURN true;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.ensure_entry_point FROM PUBLIC;
