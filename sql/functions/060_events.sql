-- Threshold events (docs/semantics.md#events): written by the call that causes them, in its
-- transaction, at most once per (budget, window, kind, dimension, percent).

-- alert_percents_of checks an alert_percents argument: null or an empty array means none (null);
-- else 1..10 integers 1..1000, ascending. SC002 naming arg otherwise.
DROP FUNCTION IF EXISTS spendcap_internal.alert_percents_of;
CREATE FUNCTION spendcap_internal.alert_percents_of(arg text, ps integer[])
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF ps IS NULL OR cardinality(ps) = 0 THEN
        RETURN NULL;
    END IF;
    IF cardinality(ps) > 10 OR array_ndims(ps) <> 1 OR array_position(ps, NULL) IS NOT NULL
       OR EXISTS (SELECT FROM unnest(ps) WITH ORDINALITY AS p(v, i)
                   WHERE p.v NOT BETWEEN 1 AND 1000 OR (p.i > 1 AND p.v <= ps[p.i - 1])) THEN
        PERFORM spendcap_internal.invalid_argument(arg, 'must be at most 10 ascending integers 1..1000');
    END IF;
    RETURN ps;
END
$fn$;

-- reached is the whole percent of hard limit h that usage u has reached, at most 1001 (past every
-- alert percent): percent p is reached, usage >= ceil(p × h / 100), exactly when p <= reached(u, h).
-- Null without a limit; an alert needs h > 0.
DROP FUNCTION IF EXISTS spendcap_internal.reached;
CREATE FUNCTION spendcap_internal.reached(u bigint, h bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT CASE WHEN h > 0 THEN least(100 * coalesce(u, 0) / h, 1001)::integer END';

-- crosses says whether usage going from before to after in one dimension with hard limit h reaches
-- one of the percents ps (ascending): the fast paths' test, one expression per dimension, which
-- sends a call that raises a threshold event to the general path (alert). width_bucket counts the
-- percents at most a value.
DROP FUNCTION IF EXISTS spendcap_internal.crosses;
CREATE FUNCTION spendcap_internal.crosses(before bigint, after bigint, h bigint, ps integer[])
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT coalesce(width_bucket(spendcap_internal.reached(after, h), ps) > width_bucket(spendcap_internal.reached(before, h), ps), false)
$fn$;

-- emit writes one event of budget b (its current window) and notifies spendcap_events with its
-- id; nothing when that (window, kind, dimension, percent) has had its event.
DROP FUNCTION IF EXISTS spendcap_internal.emit;
CREATE FUNCTION spendcap_internal.emit(b spendcap.budgets, kind text, dimension text, percent integer, usage bigint,
                                       limit_value bigint, at timestamptz, closed_by text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    id bigint;
BEGIN
    -- window_closed carries the closed window's usage and counters (b is that window).
    INSERT INTO spendcap.events (budget_id, kind, window_seq, window_start, dimension, percent, usage, limit_value,
                                 window_usage, breach_count, soft_breach_count, closed_by, occurred_at)
    VALUES (b.budget_id, kind, b.window_seq, b.window_start, dimension, percent, usage, limit_value,
            CASE WHEN closed_by IS NOT NULL THEN b.usage END,
            CASE WHEN closed_by IS NOT NULL THEN b.window_breach_count END,
            CASE WHEN closed_by IS NOT NULL THEN b.window_soft_breach_count END, closed_by, at)
    ON CONFLICT ON CONSTRAINT events_once DO NOTHING
    RETURNING event_id INTO id;
    IF id IS NOT NULL THEN
        PERFORM pg_notify('spendcap_events', id::text);
    END IF;
END
$fn$;

-- alert writes the events of one admission on one budget, brought (before) and as it will be
-- saved (after), with the budget's outcome o at instant t: a threshold event for each percent of
-- each hard-limited dimension (in byte order) that usage reaches, ascending; then hard_breach when
-- o is the window's first hard breach.
DROP FUNCTION IF EXISTS spendcap_internal.alert;
CREATE FUNCTION spendcap_internal.alert(before spendcap.budgets, after spendcap.budgets, o spendcap.reserve_outcome, t timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    x record;
BEGIN
    IF after.alert_percents IS NOT NULL AND before.usage IS DISTINCT FROM after.usage THEN
        FOR x IN
            SELECT h.key AS dim, p AS percent, h.value::bigint AS lim, (after.usage ->> h.key)::bigint AS u
              FROM jsonb_each(after.hard_limits) AS h, unnest(after.alert_percents) AS p
             WHERE p > spendcap_internal.reached((before.usage ->> h.key)::bigint, h.value::bigint)
               AND p <= spendcap_internal.reached((after.usage ->> h.key)::bigint, h.value::bigint)
             ORDER BY h.key COLLATE "C", p
        LOOP
            PERFORM spendcap_internal.emit(after, 'threshold', x.dim, x.percent, x.u, x.lim, t);
        END LOOP;
    END IF;
    IF o.outcome = 'hard_breach' AND before.window_breach_count = 0 THEN
        PERFORM spendcap_internal.emit(after, 'hard_breach', o.dimension, NULL, o.usage, o.limit_value, t);
    END IF;
END
$fn$;

-- events_since (docs/sql-api.md#events_since): the committed events after after_id, in id order,
-- at most max_rows (1..10000). Ids are taken as events are written, so a transaction that commits
-- late can make an event readable after one with a larger id (docs/semantics.md#events says how
-- readers cover that).
DROP FUNCTION IF EXISTS spendcap_internal.events_since;
CREATE FUNCTION spendcap_internal.events_since(
    after_id bigint  DEFAULT 0,
    max_rows integer DEFAULT 1000)
RETURNS SETOF spendcap.event
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
BEGIN
    IF after_id IS NULL OR after_id < 0 THEN
        PERFORM spendcap_internal.invalid_argument('after_id', 'must be 0 or an event_id');
    END IF;
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 10000);
    RETURN QUERY
        SELECT e.event_id, e.budget_id, e.kind, e.window_seq, e.window_start, e.dimension, e.percent, e.usage,
               e.limit_value, e.window_usage, e.breach_count, e.soft_breach_count, e.closed_by, e.occurred_at
          FROM spendcap.events AS e
         WHERE e.event_id > after_id
         ORDER BY e.event_id
         LIMIT max_rows;
END
$fn$;
-- recent_events (docs/sql-api.md#recent_events): the committed events before before_id (null:
-- the newest), newest first, at most max_rows (1..1000), of one budget and of one kind when they
-- are given. It reads the events kept as they are: a page that a late commit fills in is read
-- again from its start.
DROP FUNCTION IF EXISTS spendcap_internal.recent_events;
CREATE FUNCTION spendcap_internal.recent_events(
    budget_id text    DEFAULT NULL,
    kind      text    DEFAULT NULL,
    before_id bigint  DEFAULT NULL,
    max_rows  integer DEFAULT 50)
RETURNS SETOF spendcap.event
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
BEGIN
    IF budget_id IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('budget_id', budget_id);
    END IF;
    IF kind IS NOT NULL AND kind NOT IN ('threshold', 'hard_breach', 'window_closed') THEN
        PERFORM spendcap_internal.invalid_argument('kind', 'must be threshold, hard_breach or window_closed');
    END IF;
    IF before_id IS NOT NULL AND before_id < 1 THEN
        PERFORM spendcap_internal.invalid_argument('before_id', 'must be an event_id');
    END IF;
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000);
    -- With a budget, the events_once index finds its events (kept for a bounded time); without,
    -- the primary key is read backwards.
    RETURN QUERY
        SELECT e.event_id, e.budget_id, e.kind, e.window_seq, e.window_start, e.dimension, e.percent, e.usage,
               e.limit_value, e.window_usage, e.breach_count, e.soft_breach_count, e.closed_by, e.occurred_at
          FROM spendcap.events AS e
         WHERE (budget_id IS NULL OR e.budget_id = budget_id)
           AND (kind IS NULL OR e.kind = kind)
           AND (before_id IS NULL OR e.event_id < before_id)
         ORDER BY e.event_id DESC
         LIMIT max_rows;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.alert_percents_of, spendcap_internal.reached, spendcap_internal.crosses,
    spendcap_internal.emit, spendcap_internal.alert FROM PUBLIC;
REVOKE ALL ON FUNCTION spendcap_internal.events_since, spendcap_internal.recent_events FROM PUBLIC;
