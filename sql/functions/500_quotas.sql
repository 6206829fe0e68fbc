-- Quota policies (docs/semantics.md#quota-policies): sliding-window rate limits and concurrency leases.
-- Every call on a policy locks its row first (FOR NO KEY UPDATE), so admissions of one policy are
-- serialised and never deadlock; times are compared as in docs/semantics.md#quota-policies: a window entry counts while
-- its time > at - window_seconds, a lease is live while expires_at > at. retry_after_ms is rounded
-- up to whole milliseconds.

-- policy_not_found raises SC006.
DROP FUNCTION IF EXISTS spendcap_internal.policy_not_found;
CREATE FUNCTION spendcap_internal.policy_not_found(policy_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC006', MESSAGE = format('policy_id: policy %s not found', to_jsonb(policy_id));
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.policy_not_found FROM PUBLIC;

-- lock_policy locks a policy row; SC006 when there is none.
DROP FUNCTION IF EXISTS spendcap_internal.lock_policy;
CREATE FUNCTION spendcap_internal.lock_policy(policy_id text)
RETURNS spendcap.quota_policies
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    p spendcap.quota_policies;
BEGIN
    SELECT * INTO p FROM spendcap.quota_policies AS x WHERE x.policy_id = policy_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.policy_not_found(policy_id);
    END IF;
    RETURN p;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.lock_policy FROM PUBLIC;

-- ms_until is the whole milliseconds from a to b, rounded up.
DROP FUNCTION IF EXISTS spendcap_internal.ms_until;
CREATE FUNCTION spendcap_internal.ms_until(a timestamptz, b timestamptz)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
BEGIN
    RETURN (SELECT ceil(extract(epoch FROM b - a) * 1000)::bigint);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.ms_until FROM PUBLIC;

-- create_quota_policy: creates a policy, or returns created = false for an identical one (SC005
-- for another definition). max_requests > 0 needs window_seconds > 0.
-- Locks and writes one quota_policies row when it creates.
DROP FUNCTION IF EXISTS spendcap.create_quota_policy;
CREATE FUNCTION spendcap.create_quota_policy(
    policy_id      text,
    window_seconds integer     DEFAULT 0,
    max_requests   integer     DEFAULT 0,
    max_concurrent integer     DEFAULT 0,
    lease_seconds  integer     DEFAULT 60,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.quota_policy_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    w  integer := coalesce(window_seconds, 0);
    mr integer := coalesce(max_requests, 0);
    mc integer := coalesce(max_concurrent, 0);
    ls integer := coalesce(lease_seconds, 60);
    p  spendcap.quota_policies;
    r  spendcap.quota_policy_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    IF w NOT BETWEEN 0 AND 2592000 THEN
        PERFORM spendcap_internal.invalid_argument('window_seconds', 'must be 0..2592000');
    END IF;
    IF mr NOT BETWEEN 0 AND 1000000 THEN
        PERFORM spendcap_internal.invalid_argument('max_requests', 'must be 0..1000000');
    END IF;
    IF mr > 0 AND w = 0 THEN
        PERFORM spendcap_internal.invalid_argument('window_seconds', 'must be above 0 when max_requests is set');
    END IF;
    IF mc NOT BETWEEN 0 AND 1000000 THEN
        PERFORM spendcap_internal.invalid_argument('max_concurrent', 'must be 0..1000000');
    END IF;
    IF ls NOT BETWEEN 1 AND 86400 THEN
        PERFORM spendcap_internal.invalid_argument('lease_seconds', 'must be 1..86400');
    END IF;
    INSERT INTO spendcap.quota_policies (policy_id, window_seconds, max_requests, max_concurrent, lease_seconds, created_at)
    VALUES (policy_id, w, mr, mc, ls, spendcap_internal.instant(at))
    ON CONFLICT DO NOTHING;
    r.policy_id := policy_id;
    r.created := FOUND;
    IF NOT r.created THEN
        SELECT * INTO p FROM spendcap.quota_policies AS x WHERE x.policy_id = policy_id;
        IF (p.window_seconds, p.max_requests, p.max_concurrent, p.lease_seconds) IS DISTINCT FROM (w, mr, mc, ls) THEN
            RAISE EXCEPTION USING ERRCODE = 'SC005',
                MESSAGE = format('policy_id: policy %s exists with a different definition', to_jsonb(policy_id));
        END IF;
    END IF;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.create_quota_policy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.create_quota_policy TO spendcap_admin;

-- acquire_quota (docs/semantics.md#quota-policies): drops window entries and leases that are over, then: a live lease of
-- the holder is already_held (admitted, nothing counted); a full window is rate_limited; a full
-- set of leases is concurrency_limited; else the call is admitted with a window entry and a lease.
-- The counts come from the policy row (migration 5): window entries and leases are trimmed and
-- counted again only once the earliest of them is over.
-- Locks one quota_policies row and writes it when a count changes; deletes the entries and leases
-- that are over (when the counts say some are); writes one entry and one lease when it admits.
DROP FUNCTION IF EXISTS spendcap.acquire_quota;
CREATE FUNCTION spendcap.acquire_quota(
    policy_id text,
    holder_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.acquire_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    p      spendcap.quota_policies;
    t      timestamptz;
    win    interval;
    first  timestamptz;
    counts boolean := false; -- the counts changed: save them
    r      spendcap.acquire_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    PERFORM spendcap_internal.check_id('holder_id', holder_id);
    t := spendcap_internal.instant(at, past_ok => false);
    p := spendcap_internal.lock_policy(policy_id);
    win := make_interval(secs => p.window_seconds);
    IF p.window_oldest <= t - win THEN
        DELETE FROM spendcap.quota_window AS w WHERE w.policy_id = policy_id AND w.at <= t - win;
        SELECT count(*), min(w.at) INTO p.in_window, p.window_oldest
          FROM spendcap.quota_window AS w WHERE w.policy_id = policy_id;
        counts := true;
    END IF;
    IF p.leases_expire_at <= t THEN
        DELETE FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id AND l.expires_at <= t;
        SELECT count(*), min(l.expires_at) INTO p.active, p.leases_expire_at
          FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id;
        counts := true;
    END IF;

    r.retry_after_ms := 0;
    IF EXISTS (SELECT 1 FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id AND l.holder_id = holder_id) THEN
        r.admitted := true;
        r.reason := 'already_held';
    ELSIF p.max_requests > 0 AND p.in_window >= p.max_requests THEN
        r.admitted := false;
        r.reason := 'rate_limited';
        r.retry_after_ms := spendcap_internal.ms_until(t, p.window_oldest + win);
    ELSIF p.max_concurrent > 0 AND p.active >= p.max_concurrent THEN
        -- leases_expire_at may be earlier than the earliest live lease (after a release or a
        -- renewal): read the exact one.
        SELECT min(l.expires_at) INTO first FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id;
        r.admitted := false;
        r.reason := 'concurrency_limited';
        r.retry_after_ms := spendcap_internal.ms_until(t, first);
    ELSE
        IF p.window_seconds > 0 THEN
            INSERT INTO spendcap.quota_window (policy_id, at) VALUES (policy_id, t);
            p.in_window := p.in_window + 1;
            p.window_oldest := least(p.window_oldest, t);
        END IF;
        INSERT INTO spendcap.quota_leases (policy_id, holder_id, expires_at)
        VALUES (policy_id, holder_id, t + make_interval(secs => p.lease_seconds));
        p.active := p.active + 1;
        p.leases_expire_at := least(p.leases_expire_at, t + make_interval(secs => p.lease_seconds));
        counts := true;
        r.admitted := true;
        r.reason := 'ok';
    END IF;
    IF counts THEN
        UPDATE spendcap.quota_policies AS x
           SET in_window = p.in_window, window_oldest = p.window_oldest, active = p.active, leases_expire_at = p.leases_expire_at
         WHERE x.policy_id = policy_id;
    END IF;
    r.in_window := p.in_window;
    r.active := p.active;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.acquire_quota FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.acquire_quota TO spendcap_writer;

-- renew_quota: extends a live lease to at + lease_seconds; SC002 when the holder has none.
-- Locks one quota_policies row; writes one lease (and the policy row when an earlier `at` moves
-- the lease's expiry before the policy's earliest one).
DROP FUNCTION IF EXISTS spendcap.renew_quota;
CREATE FUNCTION spendcap.renew_quota(
    policy_id text,
    holder_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.renew_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    p spendcap.quota_policies;
    t timestamptz;
    r spendcap.renew_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    PERFORM spendcap_internal.check_id('holder_id', holder_id);
    t := spendcap_internal.instant(at);
    p := spendcap_internal.lock_policy(policy_id);
    UPDATE spendcap.quota_leases AS l SET expires_at = t + make_interval(secs => p.lease_seconds)
     WHERE l.policy_id = policy_id AND l.holder_id = holder_id AND l.expires_at > t
    RETURNING l.expires_at INTO r.expires_at;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.invalid_argument('holder_id', format('%s holds no live lease', to_jsonb(holder_id)));
    END IF;
    -- An earlier `at` can move an expiry back: the policy's earliest expiry must not be later.
    IF r.expires_at < p.leases_expire_at THEN
        UPDATE spendcap.quota_policies AS x SET leases_expire_at = r.expires_at WHERE x.policy_id = policy_id;
    END IF;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.renew_quota FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.renew_quota TO spendcap_writer;

-- release_quota: ends the holder's lease; released is true only when a live one was held, so a
-- second release (or a release after expiry) frees nothing. Locks one quota_policies row; deletes
-- at most one lease and then writes the policy row's count.
DROP FUNCTION IF EXISTS spendcap.release_quota;
CREATE FUNCTION spendcap.release_quota(
    policy_id text,
    holder_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.quota_released_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    t       timestamptz;
    expires timestamptz;
    r       spendcap.quota_released_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    PERFORM spendcap_internal.check_id('holder_id', holder_id);
    t := spendcap_internal.instant(at);
    PERFORM spendcap_internal.lock_policy(policy_id);
    DELETE FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id AND l.holder_id = holder_id
    RETURNING l.expires_at INTO expires;
    IF FOUND THEN
        -- active counts lease rows, expired or not.
        UPDATE spendcap.quota_policies AS x SET active = x.active - 1 WHERE x.policy_id = policy_id;
    END IF;
    r.released := coalesce(expires > t, false);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.release_quota FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.release_quota TO spendcap_writer;

-- quota_status: the definition, the window count, the live leases and their holders (in byte
-- order) as of `at`. Locks and writes nothing.
DROP FUNCTION IF EXISTS spendcap.quota_status;
CREATE FUNCTION spendcap.quota_status(
    policy_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.quota_status_result
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    p spendcap.quota_policies;
    t timestamptz;
    r spendcap.quota_status_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    t := spendcap_internal.instant(at);
    SELECT * INTO p FROM spendcap.quota_policies AS x WHERE x.policy_id = policy_id;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.policy_not_found(policy_id);
    END IF;
    r := (p.policy_id, p.window_seconds, p.max_requests, p.max_concurrent, p.lease_seconds, 0, 0, '{}'::text[]);
    IF p.window_seconds > 0 THEN
        r.in_window := (SELECT count(*) FROM spendcap.quota_window AS w
                         WHERE w.policy_id = policy_id AND w.at > t - make_interval(secs => p.window_seconds));
    END IF;
    SELECT count(*), coalesce(array_agg(l.holder_id ORDER BY l.holder_id COLLATE "C"), '{}')
      INTO r.active, r.holders
      FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id AND l.expires_at > t;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.quota_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.quota_status TO spendcap_reader;

-- delete_quota_policy: removes a policy with its window entries and leases; false when absent.
DROP FUNCTION IF EXISTS spendcap.delete_quota_policy;
CREATE FUNCTION spendcap.delete_quota_policy(
    policy_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.deleted_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.deleted_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    DELETE FROM spendcap.quota_policies AS x WHERE x.policy_id = policy_id;
    r.deleted := FOUND;
    DELETE FROM spendcap.quota_window AS x WHERE x.policy_id = policy_id;
    DELETE FROM spendcap.quota_leases AS x WHERE x.policy_id = policy_id;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.delete_quota_policy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.delete_quota_policy TO spendcap_admin;
