-- purge_expired (docs/semantics.md#jobs, job): deletes up to max_rows each of expired dedup keys, ledger rows of
-- windows that are over, expired reservations, and dispatched events older than 7 days (`events`), skipping rows another transaction holds, and
-- returns the counts; also up to max_rows expired quota leases (`leases`) and quota window entries
-- older than their policy's window (not counted: each acquire trims its policy's too). Idempotent
-- and safe on several workers at once; never needed for correctness (expired rows are ignored by
-- every call). Locks and deletes up to 6 × max_rows rows; never locks budgets or policies rows.
DROP FUNCTION IF EXISTS spendcap.purge_expired;
CREATE FUNCTION spendcap.purge_expired(
    max_rows integer     DEFAULT 10000,
    at       timestamptz DEFAULT NULL)
RETURNS spendcap.purge_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    t timestamptz;
    r spendcap.purge_result;
BEGIN
    IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000000 THEN
        PERFORM spendcap_internal.invalid_argument('max_rows', 'must be 1..1000000');
    END IF;
    t := spendcap_internal.instant(at);
    WITH doomed AS (
        SELECT k.ctid FROM spendcap.dedup_keys AS k WHERE k.expires_at <= t
         LIMIT max_rows FOR UPDATE SKIP LOCKED)
    DELETE FROM spendcap.dedup_keys AS k USING doomed WHERE k.ctid = doomed.ctid;
    GET DIAGNOSTICS r.dedup_keys = ROW_COUNT;

    -- A ledger row of an earlier window can never be released again (docs/semantics.md#spend-and-reservations).
    WITH doomed AS (
        SELECT l.ctid FROM spendcap.spend_ledger AS l JOIN spendcap.budgets AS b USING (budget_id)
         WHERE l.window_seq < b.window_seq
         LIMIT max_rows FOR UPDATE OF l SKIP LOCKED)
    DELETE FROM spendcap.spend_ledger AS l USING doomed WHERE l.ctid = doomed.ctid;
    GET DIAGNOSTICS r.ledger_rows = ROW_COUNT;

    -- Budgets keep a reserved aggregate that is trusted only until their earliest expiry, so
    -- expired rows can go without touching the budgets rows.
    WITH doomed AS (
        SELECT x.ctid FROM spendcap.reservations AS x WHERE x.expires_at <= t
         LIMIT max_rows FOR UPDATE SKIP LOCKED)
    DELETE FROM spendcap.reservations AS x USING doomed WHERE x.ctid = doomed.ctid;
    GET DIAGNOSTICS r.reservations = ROW_COUNT;

    -- Likewise policies: their counts are trusted only until their earliest lease expires and
    -- their earliest window entry leaves the window (migration 5).
    WITH doomed AS (
        SELECT l.ctid FROM spendcap.quota_leases AS l WHERE l.expires_at <= t
         LIMIT max_rows FOR UPDATE SKIP LOCKED)
    DELETE FROM spendcap.quota_leases AS l USING doomed WHERE l.ctid = doomed.ctid;
    GET DIAGNOSTICS r.leases = ROW_COUNT;

    -- Events the worker has handed to its delivery queue (each delivery holds its own copy) that
    -- are older than a week: pull readers had that week to read them.
    WITH doomed AS (
        SELECT e.ctid FROM spendcap.events AS e
         WHERE e.dispatched_at IS NOT NULL AND e.occurred_at <= t - interval '7 days'
         LIMIT max_rows FOR UPDATE SKIP LOCKED)
    DELETE FROM spendcap.events AS e USING doomed WHERE e.ctid = doomed.ctid;
    GET DIAGNOSTICS r.events = ROW_COUNT;

    WITH doomed AS (
        SELECT w.ctid FROM spendcap.quota_window AS w JOIN spendcap.quota_policies AS p USING (policy_id)
         WHERE w.at <= t - make_interval(secs => p.window_seconds)
         LIMIT max_rows FOR UPDATE OF w SKIP LOCKED)
    DELETE FROM spendcap.quota_window AS w USING doomed WHERE w.ctid = doomed.ctid;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.purge_expired FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.purge_expired TO spendcap_admin;
