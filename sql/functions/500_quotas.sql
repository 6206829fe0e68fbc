-- Quota policies (docs/semantics.md#quota-policies): sliding-window rate limits and concurrency leases.
-- Every call on a policy locks its row first (FOR NO KEY UPDATE), so admissions of one policy are
-- serialised and never deadlock; times are compared as in docs/semantics.md#quota-policies: a window entry counts while
-- its time > at - window_seconds, a lease is live while expires_at > at. retry_after_ms is rounded
-- up to whole milliseconds.

-- policy_not_found raises SC006; arg names the argument that named the policy.
DROP FUNCTION IF EXISTS spendcap_internal.policy_not_found;
CREATE FUNCTION spendcap_internal.policy_not_found(policy_id text, arg text DEFAULT 'policy_id')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC006', MESSAGE = format('%s: policy %s not found', arg, to_jsonb(policy_id));
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.policy_not_found FROM PUBLIC;

-- lock_policy locks a policy row; SC006 when there is none, naming policy_id, or also_policies
-- when the call named another policy first (named).
DROP FUNCTION IF EXISTS spendcap_internal.lock_policy;
CREATE FUNCTION spendcap_internal.lock_policy(policy_id text, named text DEFAULT NULL)
RETURNS spendcap.quota_policies
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    p spendcap.quota_policies;
BEGIN
    SELECT * INTO p FROM spendcap.quota_policies AS x WHERE x.policy_id = policy_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.policy_not_found(policy_id,
            CASE WHEN named IS NULL OR named = policy_id THEN 'policy_id' ELSE 'also_policies' END);
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
DROP FUNCTION IF EXISTS spendcap_internal.create_quota_policy;
CREATE FUNCTION spendcap_internal.create_quota_policy(
    policy_id      text,
    window_seconds integer     DEFAULT 0,
    max_requests   integer     DEFAULT 0,
    max_concurrent integer     DEFAULT 0,
    lease_seconds  integer     DEFAULT 60,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.quota_policy_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    w  integer;
    mr integer;
    mc integer;
    ls integer;
    p  spendcap.quota_policies;
    r  spendcap.quota_policy_result;
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    w := spendcap_internal.bounded('window_seconds', coalesce(window_seconds, 0), 0, 2592000);
    mr := spendcap_internal.bounded('max_requests', coalesce(max_requests, 0), 0, 1000000);
    IF mr > 0 AND w = 0 THEN
        PERFORM spendcap_internal.invalid_argument('window_seconds', 'must be above 0 when max_requests is set');
    END IF;
    mc := spendcap_internal.bounded('max_concurrent', coalesce(max_concurrent, 0), 0, 1000000);
    ls := spendcap_internal.bounded('lease_seconds', coalesce(lease_seconds, 60), 1, 86400);
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
REVOKE ALL ON FUNCTION spendcap_internal.create_quota_policy FROM PUBLIC;

-- policy_set is the policies a quota call acts on: policy_id and the ids of also_policies, once
-- each, in ascending byte order (the order they are locked in).
DROP FUNCTION IF EXISTS spendcap_internal.policy_set;
CREATE FUNCTION spendcap_internal.policy_set(policy_id text, also_policies text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    IF also_policies IS NULL THEN
        RETURN ARRAY[policy_id];
    END IF;
    RETURN (SELECT array_agg(x ORDER BY x COLLATE "C")
              FROM unnest(policy_id || spendcap_internal.also_of(also_policies, policy_id, 'also_policies')) AS x);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.policy_set FROM PUBLIC;

-- holder_call is the prologue of acquire_quota, renew_quota and release_quota: policy_id and
-- holder_id checked, the call's policy set (policy_set) and its instant t (instant; past_ok false
-- for acquire_quota).
DROP FUNCTION IF EXISTS spendcap_internal.holder_call;
CREATE FUNCTION spendcap_internal.holder_call(policy_id text, holder_id text, also_policies text[], at timestamptz,
    past_ok boolean, OUT ids text[], OUT t timestamptz)
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    PERFORM spendcap_internal.check_id('policy_id', policy_id);
    PERFORM spendcap_internal.check_id('holder_id', holder_id);
    ids := spendcap_internal.policy_set(policy_id, also_policies);
    t := spendcap_internal.instant(at, past_ok => past_ok);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.holder_call FROM PUBLIC;

-- lock_policies locks the policies of ids in their order (SC006 naming policy_id or also_policies
-- for one that does not exist) and drops their window entries and leases that are over at t: the
-- counts come from the policy rows (migration 5), and entries and leases are trimmed and counted
-- again only once the earliest of them is over. It returns the rows as stored (was) and as
-- trimmed (ps); save_policies writes those that changed.
DROP FUNCTION IF EXISTS spendcap_internal.lock_policies;
CREATE FUNCTION spendcap_internal.lock_policies(ids text[], policy_id text, t timestamptz,
    OUT was spendcap.quota_policies[], OUT ps spendcap.quota_policies[])
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    p   spendcap.quota_policies;
    win interval;
BEGIN
    FOR i IN 1 .. cardinality(ids) LOOP
        p := spendcap_internal.lock_policy(ids[i], policy_id);
        was[i] := p;
        win := make_interval(secs => p.window_seconds);
        IF p.window_oldest <= t - win THEN
            DELETE FROM spendcap.quota_window AS w WHERE w.policy_id = p.policy_id AND w.at <= t - win;
            SELECT count(*), min(w.at) INTO p.in_window, p.window_oldest
              FROM spendcap.quota_window AS w WHERE w.policy_id = p.policy_id;
        END IF;
        IF p.leases_expire_at <= t THEN
            DELETE FROM spendcap.quota_leases AS l WHERE l.policy_id = p.policy_id AND l.expires_at <= t;
            SELECT count(*), min(l.expires_at) INTO p.active, p.leases_expire_at
              FROM spendcap.quota_leases AS l WHERE l.policy_id = p.policy_id;
        END IF;
        ps[i] := p;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.lock_policies FROM PUBLIC;

-- save_policies writes the counts of the rows of ps that differ from the stored ones (was).
DROP FUNCTION IF EXISTS spendcap_internal.save_policies;
CREATE FUNCTION spendcap_internal.save_policies(ps spendcap.quota_policies[], was spendcap.quota_policies[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    FOR i IN 1 .. cardinality(ps) LOOP
        IF (ps[i].in_window, ps[i].window_oldest, ps[i].active, ps[i].leases_expire_at)
           IS DISTINCT FROM (was[i].in_window, was[i].window_oldest, was[i].active, was[i].leases_expire_at) THEN
            UPDATE spendcap.quota_policies AS x
               SET in_window = ps[i].in_window, window_oldest = ps[i].window_oldest,
                   active = ps[i].active, leases_expire_at = ps[i].leases_expire_at
             WHERE x.policy_id = ps[i].policy_id;
        END IF;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.save_policies FROM PUBLIC;

-- quota_check is what acquire_quota says for holder on policy p (trimmed to t), writing nothing:
-- a live lease of the holder is already_held (admitted, nothing to count); a full window is
-- rate_limited; a full set of leases is concurrency_limited; else ok (to be admitted).
DROP FUNCTION IF EXISTS spendcap_internal.quota_check;
CREATE FUNCTION spendcap_internal.quota_check(p spendcap.quota_policies, holder_id text, t timestamptz)
RETURNS spendcap.acquire_result
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    r     spendcap.acquire_result;
    first timestamptz;
BEGIN
    r := (true, 'ok', 0, p.in_window, p.active, p.policy_id);
    IF EXISTS (SELECT 1 FROM spendcap.quota_leases AS l WHERE l.policy_id = p.policy_id AND l.holder_id = holder_id) THEN
        r.reason := 'already_held';
    ELSIF p.max_requests > 0 AND p.in_window >= p.max_requests THEN
        r.admitted := false;
        r.reason := 'rate_limited';
        r.retry_after_ms := spendcap_internal.ms_until(t, p.window_oldest + make_interval(secs => p.window_seconds));
    ELSIF p.max_concurrent > 0 AND p.active >= p.max_concurrent THEN
        -- leases_expire_at may be earlier than the earliest live lease (after a release or a
        -- renewal): read the exact one.
        SELECT min(l.expires_at) INTO first FROM spendcap.quota_leases AS l WHERE l.policy_id = p.policy_id;
        r.admitted := false;
        r.reason := 'concurrency_limited';
        r.retry_after_ms := spendcap_internal.ms_until(t, first);
    END IF;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.quota_check FROM PUBLIC;

-- acquire_quota (docs/semantics.md#quota-policies, #quota-sets): every policy of the set (policy_id
-- and also_policies) is checked as quota_check says; the first refusal in ascending policy_id order
-- refuses the call and nothing is admitted anywhere; else every policy where the holder holds no
-- live lease admits it with a window entry and a lease. The result is the refusing policy's, or
-- policy_id's when admitted (reason ok when a lease was taken anywhere, else already_held).
-- Locks the set's quota_policies rows in ascending order and writes those whose counts changed;
-- deletes entries and leases that are over (when the counts say some are); writes one entry and
-- one lease per admitting policy.
DROP FUNCTION IF EXISTS spendcap_internal.acquire_quota;
CREATE FUNCTION spendcap_internal.acquire_quota(
    policy_id     text,
    holder_id     text,
    at            timestamptz DEFAULT NULL,
    also_policies text[]      DEFAULT NULL)
RETURNS spendcap.acquire_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t      timestamptz;
    ids    text[];
    was    spendcap.quota_policies[];
    ps     spendcap.quota_policies[];
    es     spendcap.acquire_result[];
    pick   integer;
    named  integer;
    taken  boolean := false;
    r      spendcap.acquire_result;
BEGIN
    SELECT c.ids, c.t INTO ids, t FROM spendcap_internal.holder_call(policy_id, holder_id, also_policies, at, false) AS c;
    SELECT l.was, l.ps INTO was, ps FROM spendcap_internal.lock_policies(ids, policy_id, t) AS l;
    FOR i IN 1 .. cardinality(ids) LOOP
        es[i] := spendcap_internal.quota_check(ps[i], holder_id, t);
        IF pick IS NULL AND NOT es[i].admitted THEN
            pick := i;
        END IF;
        IF ids[i] = policy_id THEN
            named := i;
        END IF;
    END LOOP;
    IF pick IS NULL THEN
        FOR i IN 1 .. cardinality(ids) LOOP
            CONTINUE WHEN es[i].reason <> 'ok';
            IF ps[i].window_seconds > 0 THEN
                INSERT INTO spendcap.quota_window (policy_id, at) VALUES (ps[i].policy_id, t);
                ps[i].in_window := ps[i].in_window + 1;
                ps[i].window_oldest := least(ps[i].window_oldest, t);
            END IF;
            INSERT INTO spendcap.quota_leases (policy_id, holder_id, expires_at)
            VALUES (ps[i].policy_id, holder_id, t + make_interval(secs => ps[i].lease_seconds));
            ps[i].active := ps[i].active + 1;
            ps[i].leases_expire_at := least(ps[i].leases_expire_at, t + make_interval(secs => ps[i].lease_seconds));
            taken := true;
        END LOOP;
        pick := named;
        r := es[named];
        r.reason := CASE WHEN taken THEN 'ok' ELSE 'already_held' END;
        r.in_window := ps[named].in_window;
        r.active := ps[named].active;
    ELSE
        r := es[pick];
    END IF;
    PERFORM spendcap_internal.save_policies(ps, was);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.acquire_quota FROM PUBLIC;

-- renew_quota: extends the holder's live lease on policy_id (SC002 when it holds none there, and
-- nothing is renewed) and on every policy of also_policies where it holds one, each to at + its
-- lease_seconds; returns policy_id's new expiry.
-- Locks the set's quota_policies rows in ascending order; writes the leases (and a policy row
-- when an earlier `at` moves a lease's expiry before the policy's earliest one).
DROP FUNCTION IF EXISTS spendcap_internal.renew_quota;
CREATE FUNCTION spendcap_internal.renew_quota(
    policy_id     text,
    holder_id     text,
    at            timestamptz DEFAULT NULL,
    also_policies text[]      DEFAULT NULL)
RETURNS spendcap.renew_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    p       spendcap.quota_policies;
    t       timestamptz;
    ids     text[];
    expires timestamptz;
    r       spendcap.renew_result;
BEGIN
    SELECT c.ids, c.t INTO ids, t FROM spendcap_internal.holder_call(policy_id, holder_id, also_policies, at, true) AS c;
    FOR i IN 1 .. cardinality(ids) LOOP
        p := spendcap_internal.lock_policy(ids[i], policy_id);
        expires := NULL;
        UPDATE spendcap.quota_leases AS l SET expires_at = t + make_interval(secs => p.lease_seconds)
         WHERE l.policy_id = p.policy_id AND l.holder_id = holder_id AND l.expires_at > t
        RETURNING l.expires_at INTO expires;
        IF ids[i] = policy_id THEN
            IF expires IS NULL THEN
                PERFORM spendcap_internal.invalid_argument('holder_id', format('%s holds no live lease', to_jsonb(holder_id)));
            END IF;
            r.expires_at := expires;
        END IF;
        -- An earlier `at` can move an expiry back: the policy's earliest expiry must not be later.
        IF expires < p.leases_expire_at THEN
            UPDATE spendcap.quota_policies AS x SET leases_expire_at = expires WHERE x.policy_id = p.policy_id;
        END IF;
    END LOOP;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.renew_quota FROM PUBLIC;

-- release_quota: ends the holder's lease on every policy of the set (policy_id and also_policies);
-- released is true when a live one was held on any of them, so a second release (or a release
-- after expiry) frees nothing. Locks the set's quota_policies rows in ascending order; deletes at
-- most one lease per policy and then writes that policy row's count.
DROP FUNCTION IF EXISTS spendcap_internal.release_quota;
CREATE FUNCTION spendcap_internal.release_quota(
    policy_id     text,
    holder_id     text,
    at            timestamptz DEFAULT NULL,
    also_policies text[]      DEFAULT NULL)
RETURNS spendcap.quota_released_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t       timestamptz;
    ids     text[];
    expires timestamptz;
    r       spendcap.quota_released_result;
BEGIN
    SELECT c.ids, c.t INTO ids, t FROM spendcap_internal.holder_call(policy_id, holder_id, also_policies, at, true) AS c;
    r.released := false;
    FOR i IN 1 .. cardinality(ids) LOOP
        PERFORM spendcap_internal.lock_policy(ids[i], policy_id);
        expires := NULL;
        DELETE FROM spendcap.quota_leases AS l WHERE l.policy_id = ids[i] AND l.holder_id = holder_id
        RETURNING l.expires_at INTO expires;
        IF FOUND THEN
            -- active counts lease rows, expired or not.
            UPDATE spendcap.quota_policies AS x SET active = x.active - 1 WHERE x.policy_id = ids[i];
        END IF;
        r.released := r.released OR coalesce(expires > t, false);
    END LOOP;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.release_quota FROM PUBLIC;

-- in_window counts the admissions of policy p inside its sliding window at t (0 without a window):
-- what quota_status and list_quota_policies show.
DROP FUNCTION IF EXISTS spendcap_internal.in_window;
CREATE FUNCTION spendcap_internal.in_window(p spendcap.quota_policies, t timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN p.window_seconds > 0 THEN
        (SELECT count(*) FROM spendcap.quota_window AS w
          WHERE w.policy_id = p.policy_id AND w.at > t - make_interval(secs => p.window_seconds))
    ELSE 0 END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.in_window FROM PUBLIC;

-- quota_status: the definition, the window count, the live leases and their holders (in byte
-- order) as of `at`. Locks and writes nothing.
DROP FUNCTION IF EXISTS spendcap_internal.quota_status;
CREATE FUNCTION spendcap_internal.quota_status(
    policy_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.quota_status_result
LANGUAGE plpgsql STABLE
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
    r := (p.policy_id, p.window_seconds, p.max_requests, p.max_concurrent, p.lease_seconds,
          spendcap_internal.in_window(p, t), 0, '{}'::text[]);
    SELECT count(*), coalesce(array_agg(l.holder_id ORDER BY l.holder_id COLLATE "C"), '{}')
      INTO r.active, r.holders
      FROM spendcap.quota_leases AS l WHERE l.policy_id = policy_id AND l.expires_at > t;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.quota_status FROM PUBLIC;

-- delete_quota_policy: removes a policy with its window entries and leases; false when absent.
DROP FUNCTION IF EXISTS spendcap_internal.delete_quota_policy;
CREATE FUNCTION spendcap_internal.delete_quota_policy(
    policy_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.deleted_result
LANGUAGE plpgsql VOLATILE
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
REVOKE ALL ON FUNCTION spendcap_internal.delete_quota_policy FROM PUBLIC;

-- list_quota_policies (docs/sql-api.md#list_quota_policies): the policies whose id starts with
-- id_prefix (null: every one) after policy `after`, in id order (bytes), at most max_rows
-- (1..1000), each with its window count and live leases at `at`. Locks and writes nothing.
DROP FUNCTION IF EXISTS spendcap_internal.list_quota_policies;
CREATE FUNCTION spendcap_internal.list_quota_policies(
    id_prefix text        DEFAULT NULL,
    after     text        DEFAULT NULL,
    max_rows  integer     DEFAULT 50,
    at        timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.quota_listing
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    prefix text := nullif(id_prefix, '');
    t      timestamptz;
BEGIN
    IF prefix IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('id_prefix', prefix);
    END IF;
    IF after IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('after', after);
    END IF;
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000);
    t := spendcap_internal.instant(at);
    RETURN QUERY
        SELECT p.policy_id, p.window_seconds, p.max_requests, p.max_concurrent, p.lease_seconds,
               spendcap_internal.in_window(p, t),
               (SELECT count(*) FROM spendcap.quota_leases AS l WHERE l.policy_id = p.policy_id AND l.expires_at > t)
          FROM spendcap.quota_policies AS p
         WHERE (prefix IS NULL OR (p.policy_id COLLATE "C" >= prefix AND p.policy_id COLLATE "C" < prefix || chr(127)))
           AND (after IS NULL OR p.policy_id COLLATE "C" > after)
         ORDER BY p.policy_id COLLATE "C"
         LIMIT max_rows;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.list_quota_policies FROM PUBLIC;
