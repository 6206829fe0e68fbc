-- The audit (docs/semantics.md#audit, docs/sql-api.md#audit): every aggregate kept next to its rows
-- is checked against them, and with repair set right under its row's lock.
--
-- Aggregates are exact only until their earliest row is over (a reservation or a lease expires, a
-- window entry leaves the window): the checks therefore compare the aggregate as the next call
-- would see it at t (brought, or trimmed, in memory) with the rows still live at t. t is the clock
-- when the reading statement runs, so it is at least the instant of every call and purge whose
-- writes that statement sees.

-- budget_findings compares budget b (as stored) with its reservations and ledger rows at t. STABLE:
-- called from one query, it reads that query's snapshot, in which every call's writes are whole.
DROP FUNCTION IF EXISTS spendcap_internal.budget_findings;
CREATE FUNCTION spendcap_internal.budget_findings(b spendcap.budgets, t timestamptz)
RETURNS SETOF spendcap.audit_finding
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    tb       timestamptz := greatest(t, b.window_start);
    now_b    spendcap.budgets := spendcap_internal.brought(b, tb);
    live     jsonb;
    earliest timestamptz;
    others   bigint := 0; -- findings so far
    ledger_n bigint;
BEGIN
    SELECT coalesce(jsonb_object_agg(d.key, d.total) FILTER (WHERE d.total <> 0), '{}') INTO live
      FROM (SELECT a.key, sum(a.value::numeric)::bigint AS total
              FROM spendcap.reservations AS r, jsonb_each(r.amounts) AS a
             WHERE r.budget_id = b.budget_id AND r.expires_at > tb
             GROUP BY a.key) AS d;
    IF now_b.reserved IS DISTINCT FROM live THEN
        RETURN NEXT ROW(b.budget_id, NULL, 'reserved', NULL, live::text, now_b.reserved::text, false)::spendcap.audit_finding;
        others := others + 1;
    END IF;
    SELECT min(r.expires_at) INTO earliest FROM spendcap.reservations AS r
     WHERE r.budget_id = b.budget_id AND r.expires_at > tb;
    -- Earlier than the earliest reservation only costs a recount; later would keep an expired
    -- reservation's amounts reserved.
    IF earliest IS NOT NULL AND (now_b.reservations_expire_at IS NULL OR now_b.reservations_expire_at > earliest) THEN
        RETURN NEXT ROW(b.budget_id, NULL, 'reservations_expire_at', NULL, to_jsonb(earliest)::text,
                        to_jsonb(now_b.reservations_expire_at)::text, false)::spendcap.audit_finding;
        others := others + 1;
    END IF;
    RETURN QUERY
        SELECT b.budget_id, NULL::text, 'ledger', l.key, to_jsonb(l.total)::text,
               to_jsonb(coalesce((now_b.usage ->> l.key)::bigint, 0))::text, false
          FROM (SELECT a.key, sum(a.value::numeric) AS total
                  FROM spendcap.spend_ledger AS s, jsonb_each(s.amounts) AS a
                 WHERE s.budget_id = b.budget_id AND s.window_seq = now_b.window_seq
                 GROUP BY a.key) AS l
         WHERE l.total > coalesce((now_b.usage ->> l.key)::numeric, 0)
         ORDER BY l.key COLLATE "C";
    GET DIAGNOSTICS ledger_n = ROW_COUNT;
    others := others + ledger_n;
    IF b.parent_id IS NOT NULL AND NOT EXISTS (SELECT FROM spendcap.budgets AS p WHERE p.budget_id = b.parent_id) THEN
        RETURN NEXT ROW(b.budget_id, NULL, 'parent', NULL, NULL, to_jsonb(b.parent_id)::text, false)::spendcap.audit_finding;
        others := others + 1;
    END IF;
    -- The stored utilisation is the stored state's while that is current (list_budgets reads the
    -- others' from their status). Checked only when nothing else was found: a wrong aggregate
    -- gives a wrong figure, and save, which every repair ends with, computes it again.
    IF others = 0 AND spendcap_internal.is_current(b.next_reset_at, b.reservations_expire_at, NULL, tb)
       AND b.utilisation_permille IS DISTINCT FROM spendcap_internal.utilisation(b.hard_limits, b.usage, b.reserved) THEN
        RETURN NEXT ROW(b.budget_id, NULL, 'utilisation', NULL,
                        to_jsonb(spendcap_internal.utilisation(b.hard_limits, b.usage, b.reserved))::text,
                        to_jsonb(b.utilisation_permille)::text, false)::spendcap.audit_finding;
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.budget_findings FROM PUBLIC;

-- policy_findings compares quota policy p (as stored) with its lease and window rows at t, like
-- budget_findings.
DROP FUNCTION IF EXISTS spendcap_internal.policy_findings;
CREATE FUNCTION spendcap_internal.policy_findings(p spendcap.quota_policies, t timestamptz)
RETURNS SETOF spendcap.audit_finding
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    win      interval := make_interval(secs => p.window_seconds);
    n        bigint;
    earliest timestamptz;
    active   bigint := p.active;
    in_win   bigint := p.in_window;
BEGIN
    SELECT count(*), min(l.expires_at) INTO n, earliest FROM spendcap.quota_leases AS l
     WHERE l.policy_id = p.policy_id AND l.expires_at > t;
    IF p.leases_expire_at <= t THEN
        active := n; -- the next acquire counts the rows again
    END IF;
    IF active <> n THEN
        RETURN NEXT ROW(NULL, p.policy_id, 'active', NULL, to_jsonb(n)::text, to_jsonb(active)::text, false)::spendcap.audit_finding;
    END IF;
    IF earliest IS NOT NULL AND (p.leases_expire_at IS NULL OR p.leases_expire_at > earliest) THEN
        RETURN NEXT ROW(NULL, p.policy_id, 'leases_expire_at', NULL, to_jsonb(earliest)::text,
                        to_jsonb(p.leases_expire_at)::text, false)::spendcap.audit_finding;
    END IF;
    SELECT count(*), min(w.at) INTO n, earliest FROM spendcap.quota_window AS w
     WHERE w.policy_id = p.policy_id AND w.at > t - win;
    IF p.window_oldest <= t - win THEN
        in_win := n;
    END IF;
    IF in_win <> n THEN
        RETURN NEXT ROW(NULL, p.policy_id, 'in_window', NULL, to_jsonb(n)::text, to_jsonb(in_win)::text, false)::spendcap.audit_finding;
    END IF;
    IF earliest IS NOT NULL AND (p.window_oldest IS NULL OR p.window_oldest > earliest) THEN
        RETURN NEXT ROW(NULL, p.policy_id, 'window_oldest', NULL, to_jsonb(earliest)::text,
                        to_jsonb(p.window_oldest)::text, false)::spendcap.audit_finding;
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.policy_findings FROM PUBLIC;

-- orphan_findings names the budgets and policies that are gone but still have rows: one finding
-- per id and table, found = the row count. (Rows a set charge left on a member budget under a
-- named budget that is gone count in that member's reserved and usage, so they are not orphans.)
DROP FUNCTION IF EXISTS spendcap_internal.orphan_findings;
CREATE FUNCTION spendcap_internal.orphan_findings()
RETURNS SETOF spendcap.audit_finding
LANGUAGE sql STABLE
AS $fn$
    SELECT o.id, NULL::text, 'orphan_' || o.tbl, NULL::text, to_jsonb(0)::text, to_jsonb(o.n)::text, false
      FROM (SELECT 'dedup_keys' AS tbl, k.budget_id AS id, count(*) AS n FROM spendcap.dedup_keys AS k GROUP BY k.budget_id
            UNION ALL SELECT 'budget_history', h.budget_id, count(*) FROM spendcap.budget_history AS h GROUP BY h.budget_id
            UNION ALL SELECT 'spend_ledger', s.budget_id, count(*) FROM spendcap.spend_ledger AS s GROUP BY s.budget_id
            UNION ALL SELECT 'reservations', r.budget_id, count(*) FROM spendcap.reservations AS r GROUP BY r.budget_id) AS o
     WHERE NOT EXISTS (SELECT FROM spendcap.budgets AS b WHERE b.budget_id = o.id)
    UNION ALL
    SELECT NULL::text, o.id, 'orphan_' || o.tbl, NULL::text, to_jsonb(0)::text, to_jsonb(o.n)::text, false
      FROM (SELECT 'quota_leases' AS tbl, l.policy_id AS id, count(*) AS n FROM spendcap.quota_leases AS l GROUP BY l.policy_id
            UNION ALL SELECT 'quota_window', w.policy_id, count(*) FROM spendcap.quota_window AS w GROUP BY w.policy_id) AS o
     WHERE NOT EXISTS (SELECT FROM spendcap.quota_policies AS p WHERE p.policy_id = o.id)
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.orphan_findings FROM PUBLIC;

-- audit checks every budget and quota policy and returns up to max_rows (1..1000000) findings:
-- budgets by id, then policies by id, then orphan rows. A clean database returns none. It reads
-- in one snapshot and locks nothing, so it never holds up a call. With repair, the budgets and
-- policies of those findings are locked in ascending id (budgets, then policies), checked again
-- and corrected in this transaction, and orphan rows are deleted: repaired = true.
DROP FUNCTION IF EXISTS spendcap_internal.audit;
CREATE FUNCTION spendcap_internal.audit(
    max_rows integer DEFAULT 10000,
    repair   boolean DEFAULT false)
RETURNS SETOF spendcap.audit_finding
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    found_rows spendcap.audit_finding[];
    f          spendcap.audit_finding;
    id         text;
    b          spendcap.budgets;
    p          spendcap.quota_policies;
    t          timestamptz;
    n          bigint;
BEGIN
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000000);
    IF repair IS NULL THEN
        PERFORM spendcap_internal.invalid_argument('repair', 'is required');
    END IF;
    -- One statement, one snapshot; clock_timestamp() is read after the snapshot is taken.
    found_rows := ARRAY(
        WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS t)
        SELECT s.af FROM (
            SELECT af, 1 AS part, af.budget_id AS k FROM clock, spendcap.budgets AS x,
                   LATERAL spendcap_internal.budget_findings(x, clock.t) AS af
            UNION ALL
            SELECT af, 2, af.policy_id FROM clock, spendcap.quota_policies AS q,
                   LATERAL spendcap_internal.policy_findings(q, clock.t) AS af
            UNION ALL
            SELECT af, CASE WHEN af.budget_id IS NULL THEN 4 ELSE 3 END, coalesce(af.budget_id, af.policy_id) FROM spendcap_internal.orphan_findings() AS af) AS s
        ORDER BY s.part, s.k COLLATE "C", (s.af).check_name COLLATE "C", (s.af).dimension COLLATE "C"
        LIMIT max_rows);
    IF NOT repair THEN
        RETURN QUERY SELECT * FROM unnest(found_rows);
        RETURN;
    END IF;

    FOR id IN SELECT DISTINCT x.budget_id COLLATE "C" FROM unnest(found_rows) AS x
               WHERE x.budget_id IS NOT NULL AND x.check_name NOT LIKE 'orphan\_%' ORDER BY 1 LOOP
        PERFORM FROM spendcap.budgets AS x WHERE x.budget_id = id FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND; -- deleted since it was read
        t := clock_timestamp();
        b := spendcap_internal.lock_budget(id, t);
        FOR f IN SELECT * FROM spendcap_internal.budget_findings(b, t) LOOP
            CASE f.check_name
            WHEN 'reserved' THEN b.reserved := f.expected::jsonb;
            WHEN 'reservations_expire_at' THEN b.reservations_expire_at := (f.expected::jsonb #>> '{}')::timestamptz;
            WHEN 'ledger' THEN b.usage := b.usage || jsonb_build_object(f.dimension, (f.expected::jsonb #>> '{}')::numeric::bigint);
            WHEN 'parent' THEN b.parent_id := NULL;
            WHEN 'utilisation' THEN NULL; -- save computes it
            END CASE;
            f.repaired := true;
            RETURN NEXT f;
        END LOOP;
        PERFORM spendcap_internal.save(b);
    END LOOP;

    FOR id IN SELECT DISTINCT x.policy_id COLLATE "C" FROM unnest(found_rows) AS x
               WHERE x.policy_id IS NOT NULL AND x.check_name NOT LIKE 'orphan\_%' ORDER BY 1 LOOP
        PERFORM FROM spendcap.quota_policies AS x WHERE x.policy_id = id FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;
        t := clock_timestamp();
        p := spendcap_internal.lock_policy(id);
        FOR f IN SELECT * FROM spendcap_internal.policy_findings(p, t) LOOP
            f.repaired := true;
            RETURN NEXT f;
        END LOOP;
        IF FOUND THEN
            -- Count the rows again, as an acquire does once the earliest of them is over.
            UPDATE spendcap.quota_policies AS x
               SET (active, leases_expire_at) = (SELECT count(*), min(l.expires_at) FROM spendcap.quota_leases AS l
                                                  WHERE l.policy_id = id AND l.expires_at > t),
                   (in_window, window_oldest) = (SELECT count(*), min(w.at) FROM spendcap.quota_window AS w
                                                  WHERE w.policy_id = id AND w.at > t - make_interval(secs => x.window_seconds))
             WHERE x.policy_id = id;
            DELETE FROM spendcap.quota_leases AS l WHERE l.policy_id = id AND l.expires_at <= t;
            DELETE FROM spendcap.quota_window AS w USING spendcap.quota_policies AS x
             WHERE w.policy_id = id AND x.policy_id = id AND w.at <= t - make_interval(secs => x.window_seconds);
        END IF;
    END LOOP;

    FOR f IN SELECT * FROM unnest(found_rows) AS x WHERE x.check_name LIKE 'orphan\_%' LOOP
        -- The finding names the table (orphan_<table>) and whose rows they are. Gone rows stay
        -- gone: a budget or policy of that id created since has rows of its own.
        IF f.budget_id IS NOT NULL THEN
            EXECUTE format('DELETE FROM spendcap.%I AS o WHERE o.budget_id = $1
                             AND NOT EXISTS (SELECT FROM spendcap.budgets AS x WHERE x.budget_id = $1)',
                           substr(f.check_name, length('orphan_') + 1)) USING f.budget_id;
        ELSE
            EXECUTE format('DELETE FROM spendcap.%I AS o WHERE o.policy_id = $1
                             AND NOT EXISTS (SELECT FROM spendcap.quota_policies AS x WHERE x.policy_id = $1)',
                           substr(f.check_name, length('orphan_') + 1)) USING f.policy_id;
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        f.repaired := n > 0;
        RETURN NEXT f;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.audit FROM PUBLIC;
