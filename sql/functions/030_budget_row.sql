-- The budget row: reading it (locked, rolled to the call's instant), writing it, its status, its
-- reservations and its history (docs/semantics.md#windows). Conventions: 000_validation.sql.

-- budget_not_found raises SC001 naming the argument that held the id.
DROP FUNCTION IF EXISTS spendcap_internal.budget_not_found;
CREATE FUNCTION spendcap_internal.budget_not_found(budget_id text, arg text DEFAULT 'budget_id')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC001', MESSAGE = format('%s: budget %s not found', arg, to_jsonb(budget_id));
END
$fn$;

-- max_depth is how many budgets a chain holds at most, the budget itself included.
DROP FUNCTION IF EXISTS spendcap_internal.max_depth;
CREATE FUNCTION spendcap_internal.max_depth()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT 8';

-- ancestors are budget_id's parent, its parent's parent and so on, nearest first. The walk stops
-- after max_depth steps whatever the rows say, so no data can make it loop.
DROP FUNCTION IF EXISTS spendcap_internal.ancestors;
CREATE FUNCTION spendcap_internal.ancestors(budget_id text)
RETURNS text[]
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    chain text[] := '{}';
    id    text := budget_id;
BEGIN
    FOR i IN 1 .. spendcap_internal.max_depth() LOOP
        SELECT x.parent_id INTO id FROM spendcap.budgets AS x WHERE x.budget_id = id;
        EXIT WHEN id IS NULL;
        chain := chain || id;
    END LOOP;
    RETURN chain;
END
$fn$;

-- lock_parent checks parent_id as the parent of budget_id (create_budget, set_parent): an id, not
-- the budget itself (SC002), an existing budget (SC001), a chain that stays within max_depth
-- (SC002). It takes a share lock on the parent's row, which delete_budget's lock waits for, so the
-- parent cannot be deleted before the child is committed.
DROP FUNCTION IF EXISTS spendcap_internal.lock_parent;
CREATE FUNCTION spendcap_internal.lock_parent(parent_id text, budget_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
BEGIN
    PERFORM spendcap_internal.check_id('parent_id', parent_id);
    IF parent_id = budget_id THEN
        PERFORM spendcap_internal.invalid_argument('parent_id', 'a budget cannot be its own parent');
    END IF;
    PERFORM FROM spendcap.budgets AS x WHERE x.budget_id = parent_id FOR KEY SHARE;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.budget_not_found(parent_id, 'parent_id');
    END IF;
    IF budget_id = ANY (spendcap_internal.ancestors(parent_id)) THEN
        PERFORM spendcap_internal.invalid_argument('parent_id', format('%s is a descendant of %s: the chain would be a cycle',
            to_jsonb(parent_id), to_jsonb(budget_id)));
    END IF;
    IF cardinality(spendcap_internal.ancestors(parent_id)) + 2 > spendcap_internal.max_depth() THEN
        PERFORM spendcap_internal.invalid_argument('parent_id',
            format('a chain holds at most %s budgets, the budget itself included', spendcap_internal.max_depth()));
    END IF;
END
$fn$;

-- refuse_children raises SC002 naming budget_id when it is the parent of any budget (what: why that matters).
DROP FUNCTION IF EXISTS spendcap_internal.refuse_children;
CREATE FUNCTION spendcap_internal.refuse_children(budget_id text, what text)
RETURNS void
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    child text;
BEGIN
    SELECT x.budget_id INTO child FROM spendcap.budgets AS x WHERE x.parent_id = budget_id ORDER BY x.budget_id COLLATE "C" LIMIT 1;
    IF FOUND THEN
        PERFORM spendcap_internal.invalid_argument('budget_id', format('%s has children (%s): %s', to_jsonb(budget_id), to_jsonb(child), what));
    END IF;
END
$fn$;

-- read_budget is the budget row as stored, without a lock (readers: budget_status, check_usage,
-- budget_history); SC001 when the budget does not exist. Writers take lock_budget. (Valkey:
-- read_budget and lock_budget of the same names.)
DROP FUNCTION IF EXISTS spendcap_internal.read_budget;
CREATE FUNCTION spendcap_internal.read_budget(budget_id text)
RETURNS spendcap.budgets
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
BEGIN
    SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = budget_id;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.budget_not_found(budget_id);
    END IF;
    RETURN b;
END
$fn$;

-- is_current says whether a budget with next_reset_at, reservations_expire_at and series_next_at
-- needs no bringing at instant t: t is inside its window, before its earliest reservation expiry
-- and inside its usage series' running bucket. The one test of lock_budget, the fast paths and
-- report_usage_batch (an inlined SQL function: free in PL/pgSQL). Readers that ask only whether
-- the stored figures hold at t (list_budgets, the audit) pass a null series_next_at: closing a
-- bucket changes no figure of the budget's window.
DROP FUNCTION IF EXISTS spendcap_internal.is_current;
CREATE FUNCTION spendcap_internal.is_current(next_reset_at timestamptz, reservations_expire_at timestamptz,
                                             series_next_at timestamptz, t timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT (next_reset_at IS NULL OR t < next_reset_at) AND (reservations_expire_at IS NULL OR t < reservations_expire_at)
           AND (series_next_at IS NULL OR t < series_next_at)';

-- lock_budget locks budget_id's row and brings it to the call's instant t = greatest(at,
-- window_start), where at has been through instant() (callers compute the same t from the
-- returned row): a due window is closed into
-- history and rolled, expired reservations are dropped and the reserved aggregate recomputed. It
-- saves the row only when one of those happened. SC001 when the budget does not exist.
-- Locks one budgets row; on a roll writes one history row.
DROP FUNCTION IF EXISTS spendcap_internal.lock_budget;
CREATE FUNCTION spendcap_internal.lock_budget(budget_id text, at timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b      spendcap.budgets;
    t      timestamptz;
    rolled spendcap.budgets;
BEGIN
    SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = budget_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM spendcap_internal.budget_not_found(budget_id);
    END IF;
    t := greatest(at, b.window_start);
    IF spendcap_internal.is_current(b.next_reset_at, b.reservations_expire_at, b.series_next_at, t) THEN
        RETURN b;
    END IF;
    rolled := spendcap_internal.brought(b, t);
    PERFORM spendcap_internal.record_bring(b, rolled, t);
    PERFORM spendcap_internal.save(rolled);
    RETURN rolled;
END
$fn$;

-- brought is budget b as lock_budget leaves it at instant t (t >= b.window_start): rolled by
-- advanced, and with the reservations expired by t out of its reserved aggregate. It writes
-- nothing: record_bring writes the rest, save the row.
DROP FUNCTION IF EXISTS spendcap_internal.brought;
CREATE FUNCTION spendcap_internal.brought(b spendcap.budgets, t timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    rolled spendcap.budgets := spendcap_internal.advanced(b, t);
BEGIN
    IF rolled.reservations_expire_at <= t THEN
        rolled.reserved := spendcap_internal.live_reserved(rolled, t);
        rolled.reservations_expire_at := (SELECT min(r.expires_at) FROM spendcap.reservations AS r
                                           WHERE r.budget_id = b.budget_id AND r.expires_at > t);
    END IF;
    RETURN rolled;
END
$fn$;

-- record_bring writes what bringing b to rolled (brought at t) changed outside b's row: the usage
-- series bucket it closed, the window it closed, into history, and the reservations that expired,
-- deleted.
DROP FUNCTION IF EXISTS spendcap_internal.record_bring;
CREATE FUNCTION spendcap_internal.record_bring(b spendcap.budgets, rolled spendcap.budgets, t timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF rolled.series_start IS DISTINCT FROM b.series_start THEN
        PERFORM spendcap_internal.close_bucket(b, t);
    END IF;
    IF rolled.next_reset_at IS DISTINCT FROM b.next_reset_at THEN
        PERFORM spendcap_internal.close_window(b, b.next_reset_at, 'schedule', t);
    END IF;
    IF b.reservations_expire_at <= t THEN
        DELETE FROM spendcap.reservations AS r WHERE r.budget_id = b.budget_id AND r.expires_at <= t;
    END IF;
END
$fn$;

-- advanced returns budget b as of instant t: unchanged while t is inside its window and its usage
-- series' running bucket, else with the bucket containing t started (series_started) and rolled to
-- the window containing t (docs/semantics.md#windows, exact lazy roll: any number of missed periods is one roll).
-- window_seq counts closed windows that had usage or breaches, so it is the same whenever and
-- however often rolls are materialised. It writes nothing; writers close the old window into
-- history (close_window skips an empty one).
DROP FUNCTION IF EXISTS spendcap_internal.advanced;
CREATE FUNCTION spendcap_internal.advanced(b spendcap.budgets, t timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    w record;
BEGIN
    -- The bucket first: it ends with the usage of the window it saw (record_bring closes it from b).
    IF t >= b.series_next_at THEN
        b := spendcap_internal.series_started(b, b.series_every, t);
    END IF;
    IF b.next_reset_at IS NULL OR t < b.next_reset_at THEN
        RETURN b;
    END IF;
    w := spendcap_internal.window_of(b.reset_anchor, b.reset_n, b.reset_unit, b.reset_timezone, b.created_at, t);
    -- Only a window with usage or breaches counts: closing an empty one (the roll job does so every
    -- period for idle budgets) must not move window_seq, or it would depend on when rolls happen.
    IF b.usage <> '{}' OR b.window_breach_count > 0 OR b.window_soft_breach_count > 0 THEN
        b.window_seq := b.window_seq + 1;
    END IF;
    b.window_k := w.k;
    b.window_start := w.window_start;
    b.next_reset_at := w.next_reset_at;
    b := spendcap_internal.usage_cleared(b);
    b.window_breach_count := 0;
    b.window_soft_breach_count := 0;
    b.last_breach_at := NULL;
    b.last_breach_dim := NULL;
    RETURN b;
END
$fn$;

-- usage_cleared is budget b with its usage emptied (a roll, a manual reset). The usage series'
-- running bucket keeps what it counted: its base drops by the usage cleared, so that usage minus
-- base is unchanged (docs/semantics.md#usage-series).
DROP FUNCTION IF EXISTS spendcap_internal.usage_cleared;
CREATE FUNCTION spendcap_internal.usage_cleared(b spendcap.budgets)
RETURNS spendcap.budgets
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF b.series_every IS NOT NULL THEN
        b.series_base := spendcap_internal.difference(b.series_base, b.usage);
    END IF;
    b.usage := '{}';
    RETURN b;
END
$fn$;

-- series_started is budget b with a usage series of width every (null: none) whose running bucket
-- is the one holding t and counts from b's usage now (create_budget, set_limits, and advanced when
-- the running bucket ended). It writes nothing: the caller closes the bucket it replaces.
DROP FUNCTION IF EXISTS spendcap_internal.series_started;
CREATE FUNCTION spendcap_internal.series_started(b spendcap.budgets, every text, t timestamptz)
RETURNS spendcap.budgets
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    w record;
BEGIN
    b.series_every := every;
    IF every IS NULL THEN
        b.series_start := NULL;
        b.series_next_at := NULL;
        b.series_base := NULL;
        RETURN b;
    END IF;
    w := spendcap_internal.series_bucket(every, b.reset_timezone, t);
    b.series_start := w.bucket_start;
    b.series_next_at := w.bucket_end;
    b.series_base := b.usage;
    RETURN b;
END
$fn$;

-- bucket_usage is the usage the running bucket of budget b's series counted.
DROP FUNCTION IF EXISTS spendcap_internal.bucket_usage;
CREATE FUNCTION spendcap_internal.bucket_usage(b spendcap.budgets)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT spendcap_internal.difference(b.usage, b.series_base)';

-- close_bucket appends the running bucket of budget b's series (ended by t) to usage_series when
-- it counted any usage, and deletes b's buckets that started before the series' retention as of t:
-- the table holds at most a retention's worth of buckets per budget with no job to run.
DROP FUNCTION IF EXISTS spendcap_internal.close_bucket;
CREATE FUNCTION spendcap_internal.close_bucket(b spendcap.budgets, t timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    u jsonb := spendcap_internal.bucket_usage(b);
BEGIN
    IF u <> '{}' THEN
        INSERT INTO spendcap.usage_series (budget_id, bucket_start, bucket_end, usage)
        VALUES (b.budget_id, b.series_start, b.series_next_at, u);
    END IF;
    DELETE FROM spendcap.usage_series AS s
     WHERE s.budget_id = b.budget_id AND s.bucket_start < t - spendcap_internal.series_kept(b.series_every);
END
$fn$;

-- live_reserved sums the reservations of budget b still live at t. The aggregate kept on the row is
-- exact until its earliest expiry, so the reservations table is read only after one has expired.
DROP FUNCTION IF EXISTS spendcap_internal.live_reserved;
CREATE FUNCTION spendcap_internal.live_reserved(b spendcap.budgets, t timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    IF b.reservations_expire_at IS NULL OR t < b.reservations_expire_at THEN
        RETURN b.reserved;
    END IF;
    RETURN coalesce((
        SELECT jsonb_object_agg(d.key, d.total)
        FROM (SELECT a.key, sum(a.value::numeric)::bigint AS total
              FROM spendcap.reservations r, jsonb_each(r.amounts) AS a
              WHERE r.budget_id = b.budget_id AND r.expires_at > t
              GROUP BY a.key) d
        WHERE d.total <> 0), '{}');
END
$fn$;

-- status_row renders budget b (already advanced to t) as the budget_status result (docs/semantics.md#reading-a-budget).
DROP FUNCTION IF EXISTS spendcap_internal.status_row;
CREATE FUNCTION spendcap_internal.status_row(b spendcap.budgets, t timestamptz)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    r spendcap.budget_status_result;
    reserved jsonb := spendcap_internal.live_reserved(b, t);
BEGIN
    r.budget_id := b.budget_id;
    r.parent_id := b.parent_id;
    r.hard_limits := b.hard_limits;
    r.soft_limits := b.soft_limits;
    r.reset_every := b.reset_every;
    r.reset_timezone := b.reset_timezone;
    r.reset_anchor := b.reset_anchor;
    r.mode := b.mode;
    r.scope_type := b.scope_type;
    r.scope_id := b.scope_id;
    r.dedup_ttl_seconds := b.dedup_ttl_seconds;
    r.alert_percents := b.alert_percents;
    r.window_seq := b.window_seq;
    r.window_start := b.window_start;
    r.next_reset_at := b.next_reset_at;
    r.usage := b.usage;
    r.reserved := reserved;
    r.remaining := coalesce((
        SELECT jsonb_object_agg(h.key, greatest(0, h.value::bigint
                                                  - coalesce((b.usage ->> h.key)::bigint, 0)
                                                  - coalesce((reserved ->> h.key)::bigint, 0)))
        FROM jsonb_each(b.hard_limits) AS h), '{}');
    r.breach_count := b.breach_count;
    r.soft_breach_count := b.soft_breach_count;
    r.window_breach_count := b.window_breach_count;
    r.window_soft_breach_count := b.window_soft_breach_count;
    r.last_breach_at := b.last_breach_at;
    r.last_breach_dim := b.last_breach_dim;
    r.created_at := b.created_at;
    r.updated_at := b.updated_at;
    r.usage_series := b.series_every;
    RETURN r;
END
$fn$;

-- save writes the mutable state of b back to its row: the one list of the columns a writer
-- changes. One row by its key: an UPDATE from unnest of an array (tried for save_all) gets a
-- custom plan, planned again on every call, which made the general path a third slower.
DROP FUNCTION IF EXISTS spendcap_internal.save;
CREATE FUNCTION spendcap_internal.save(b spendcap.budgets)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    UPDATE spendcap.budgets AS x SET
        hard_limits = b.hard_limits, soft_limits = b.soft_limits, mode = b.mode, updated_at = b.updated_at,
        window_seq = b.window_seq, window_k = b.window_k, window_start = b.window_start,
        next_reset_at = b.next_reset_at, usage = b.usage, reserved = b.reserved,
        reservations_expire_at = b.reservations_expire_at, breach_count = b.breach_count,
        soft_breach_count = b.soft_breach_count, window_breach_count = b.window_breach_count,
        window_soft_breach_count = b.window_soft_breach_count, last_breach_at = b.last_breach_at,
        last_breach_dim = b.last_breach_dim, parent_id = b.parent_id, alert_percents = b.alert_percents,
        series_every = b.series_every, series_start = b.series_start, series_next_at = b.series_next_at,
        series_base = b.series_base,
        utilisation_permille = spendcap_internal.utilisation(b.hard_limits, b.usage, b.reserved)
    WHERE x.budget_id = b.budget_id;
END
$fn$;

-- save_all saves every budget of bs (the report_usage_batch general path's dirty rows).
DROP FUNCTION IF EXISTS spendcap_internal.save_all;
CREATE FUNCTION spendcap_internal.save_all(bs spendcap.budgets[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    b spendcap.budgets;
BEGIN
    FOREACH b IN ARRAY bs LOOP
        PERFORM spendcap_internal.save(b);
    END LOOP;
END
$fn$;

-- close_window records the window of b that ends at window_end in the history, and its
-- window_closed event (docs/semantics.md#events) as of the closing call's instant at, unless it had
-- no usage and no breaches (docs/semantics.md#windows).
DROP FUNCTION IF EXISTS spendcap_internal.close_window;
CREATE FUNCTION spendcap_internal.close_window(b spendcap.budgets, window_end timestamptz, closed_by text, at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    IF b.usage <> '{}' OR b.window_breach_count > 0 OR b.window_soft_breach_count > 0 THEN
        INSERT INTO spendcap.budget_history
            (budget_id, window_seq, window_start, window_end, usage, breach_count, soft_breach_count, closed_by)
        VALUES (b.budget_id, b.window_seq, b.window_start, window_end, b.usage,
                b.window_breach_count, b.window_soft_breach_count, closed_by);
        PERFORM spendcap_internal.emit(b, 'window_closed', NULL, NULL, NULL, NULL, at, closed_by);
    END IF;
END
$fn$;

-- take_reservation ends a live reservation of budget_id (its budget row locked and brought to the
-- call's instant by lock_budget, so expired ones are gone) and returns its amounts; SC007 when it is
-- unknown, expired or already finished. Deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap_internal.take_reservation;
CREATE FUNCTION spendcap_internal.take_reservation(named_id text, reservation_id text, budget_id text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    amounts jsonb;
BEGIN
    DELETE FROM spendcap.reservations AS r
     WHERE r.named_id = named_id AND r.reservation_id = reservation_id AND r.budget_id = budget_id
    RETURNING r.amounts INTO amounts;
    RETURN amounts;
END
$fn$;

-- reservation_not_found raises SC007.
DROP FUNCTION IF EXISTS spendcap_internal.reservation_not_found;
CREATE FUNCTION spendcap_internal.reservation_not_found(reservation_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SC007', MESSAGE = format(
        'reservation_id: reservation %s is unknown, expired or already finished', to_jsonb(reservation_id));
END
$fn$;

-- lock_set locks the budgets ids, once each, in ascending byte order of their ids (the order every
-- charge to a set takes, so that sets that overlap never deadlock), and returns them in that
-- order, each brought to the call's instant as lock_budget does. SC001 for one that does not exist.
DROP FUNCTION IF EXISTS spendcap_internal.lock_set;
CREATE FUNCTION spendcap_internal.lock_set(ids text[], at timestamptz)
RETURNS spendcap.budgets[]
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    bs spendcap.budgets[] := '{}';
    id text;
BEGIN
    FOR id IN SELECT s.x FROM (SELECT DISTINCT x FROM unnest(ids) AS x) AS s ORDER BY s.x COLLATE "C" LOOP
        bs := bs || spendcap_internal.lock_budget(id, at);
    END LOOP;
    RETURN bs;
END
$fn$;
