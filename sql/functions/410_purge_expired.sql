-- purge_rows deletes at most max_rows rows of the table tbl (a spendcap table, as x) for which
-- the condition doomed holds ($2 is t), skipping rows that another transaction holds, and counts
-- them. Dynamic SQL with the constant texts of purge_expired only: the purge is a job, not a call
-- on the request path, and one statement shape serves every table.
DROP FUNCTION IF EXISTS spendcap_internal.purge_rows;
CREATE FUNCTION spendcap_internal.purge_rows(tbl text, doomed text, max_rows integer, t timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    n integer;
BEGIN
    EXECUTE format('WITH doomed AS (SELECT x.ctid FROM %s AS x WHERE %s LIMIT $1 FOR UPDATE OF x SKIP LOCKED) '
                   'DELETE FROM %s AS x USING doomed WHERE x.ctid = doomed.ctid', tbl, doomed, tbl)
        USING max_rows, t;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.purge_rows FROM PUBLIC;

-- purge_expired (docs/semantics.md#jobs, job): deletes up to max_rows each of expired dedup keys, ledger rows of
-- windows that are over, expired reservations, and dispatched events older than 7 days (`events`), skipping rows another transaction holds, and
-- returns the counts; also up to max_rows expired quota leases (`leases`) and quota window entries
-- older than their policy's window (not counted: each acquire trims its policy's too). Idempotent
-- and safe on several workers at once; never needed for correctness (expired rows are ignored by
-- every call). Locks and deletes up to 6 × max_rows rows; never locks budgets or policies rows.
DROP FUNCTION IF EXISTS spendcap_internal.purge_expired;
CREATE FUNCTION spendcap_internal.purge_expired(
    max_rows integer     DEFAULT 10000,
    at       timestamptz DEFAULT NULL)
RETURNS spendcap.purge_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t timestamptz;
    r spendcap.purge_result;
BEGIN
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000000);
    t := spendcap_internal.instant(at);
    r.dedup_keys := spendcap_internal.purge_rows('spendcap.dedup_keys', 'x.expires_at <= $2', max_rows, t);
    -- A ledger row of an earlier window can never be released again (docs/semantics.md#spend-and-reservations).
    r.ledger_rows := spendcap_internal.purge_rows('spendcap.spend_ledger',
        'x.window_seq < (SELECT b.window_seq FROM spendcap.budgets AS b WHERE b.budget_id = x.budget_id)', max_rows, t);
    -- Budgets keep a reserved aggregate that is trusted only until their earliest expiry, so
    -- expired rows can go without touching the budgets rows.
    r.reservations := spendcap_internal.purge_rows('spendcap.reservations', 'x.expires_at <= $2', max_rows, t);
    -- Likewise policies: their counts are trusted only until their earliest lease expires and
    -- their earliest window entry leaves the window (migration 5).
    r.leases := spendcap_internal.purge_rows('spendcap.quota_leases', 'x.expires_at <= $2', max_rows, t);
    -- Events the worker has handed to its delivery queue (each delivery holds its own copy) that
    -- are older than a week: pull readers had that week to read them.
    r.events := spendcap_internal.purge_rows('spendcap.events',
        'x.dispatched_at IS NOT NULL AND x.occurred_at <= $2 - interval ''7 days''', max_rows, t);
    PERFORM spendcap_internal.purge_rows('spendcap.quota_window',
        'x.at <= $2 - (SELECT make_interval(secs => p.window_seconds) FROM spendcap.quota_policies AS p WHERE p.policy_id = x.policy_id)',
        max_rows, t);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.purge_expired FROM PUBLIC;
