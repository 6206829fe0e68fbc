-- Drops the entry points and the gate; the function files of the release migrated down to define
-- the API functions themselves again (down clears the function records, so its `migrate up`
-- re-applies every file).
DO $drop$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = 'spendcap'::regnamespace LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f);
    END LOOP;
END
$drop$;
DROP TABLE IF EXISTS spendcap.deploy_gate;
