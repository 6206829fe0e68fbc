-- list_budgets (docs/sql-api.md#list_budgets): a page of budgets as of `at`, rolled without writing
-- like budget_status, found by id prefix or substring and filtered by mode, parent, nearness to a
-- limit and breaches in the current window; in byte order of their ids, or by utilisation (the
-- highest share of any hard limit that usage plus reserved takes, in thousandths rounded down;
-- budgets without a hard limit last), then id. Keyset pagination: pass the cursor of a page's last
-- row as `after` for the next page. Writes and locks nothing. Order by id with a prefix reads an
-- index; a substring, a filter or the utilisation order reads every budget row (a stored column:
-- 100,000 budgets in tens of milliseconds).
-- listable says whether a budget (its id, mode and parent) matches list_budgets' search: id
-- prefix, substring, mode, parent, roots only (null: any). An inlined SQL function, so that the
-- planner sees the prefix as a range of the byte-order index.
DROP FUNCTION IF EXISTS spendcap_internal.listable;
CREATE FUNCTION spendcap_internal.listable(id text, mode text, parent text,
    prefix text, part text, want_mode text, want_parent text, roots_only boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT (prefix IS NULL OR (id COLLATE "C" >= prefix AND id COLLATE "C" < prefix || chr(127)))
       AND (part IS NULL OR strpos(id, part) > 0)
       AND (want_mode IS NULL OR mode = want_mode)
       AND (want_parent IS NULL OR parent = want_parent)
       AND (NOT coalesce(roots_only, false) OR parent IS NULL)
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.listable FROM PUBLIC;

-- listed is every budget that matches list_budgets' search, as of t: s is null while its window
-- is current and no reservation has expired, else its status rolled without writing (few rows,
-- since the worker rolls due windows); u its utilisation, -1 for none so that it sorts last; wb
-- its hard breaches this window. An inlined SQL function, so that the caller's ORDER BY and LIMIT
-- reach its scans (the id order then reads the index and stops). The others are found by two
-- indexes: the second branch's condition is the negation of the first's (is_current at t, not
-- at greatest(t, window_start): a stored row's window starts before its end and before its
-- reservations expire, so the two agree). Whole rows stay out of the sort: listing_row reads the
-- page's rows again. The id order reads listed_by_id instead, whose one scan the index serves.
-- Arguments are written listed.<name>: in a SQL function a column of the same name would win.
DROP FUNCTION IF EXISTS spendcap_internal.listed;
CREATE FUNCTION spendcap_internal.listed(prefix text, part text, mode text, parent_id text, roots_only boolean, t timestamptz)
RETURNS TABLE (budget_id text, alert_percents integer[], s spendcap.budget_status_result, u integer, wb bigint)
LANGUAGE sql STABLE
AS $fn$
    SELECT x.budget_id, x.alert_percents, NULL::spendcap.budget_status_result, coalesce(x.utilisation_permille, -1), x.window_breach_count
      FROM spendcap.budgets AS x
     WHERE spendcap_internal.is_current(x.next_reset_at, x.reservations_expire_at, NULL, listed.t)
       AND spendcap_internal.listable(x.budget_id, x.mode, x.parent_id, listed.prefix, listed.part, listed.mode,
                                      listed.parent_id, listed.roots_only)
    UNION ALL
    SELECT y.budget_id, y.alert_percents, y.s,
           coalesce(spendcap_internal.utilisation((y.s).hard_limits, (y.s).usage, (y.s).reserved), -1), (y.s).window_breach_count
      FROM (SELECT x.budget_id, x.alert_percents,
                   spendcap_internal.status_row(spendcap_internal.advanced(x, greatest(listed.t, x.window_start)),
                                                greatest(listed.t, x.window_start)) AS s
              FROM spendcap.budgets AS x
             WHERE (x.next_reset_at <= listed.t OR x.reservations_expire_at <= listed.t)
               AND spendcap_internal.listable(x.budget_id, x.mode, x.parent_id, listed.prefix, listed.part, listed.mode,
                                              listed.parent_id, listed.roots_only)
            OFFSET 0) AS y
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.listed FROM PUBLIC;

-- listed_by_id is listed for the id order: one scan, in the index's order, that the caller's
-- LIMIT stops; the CASE rolls only the rows whose window or earliest reservation is over (once
-- per use of s).
DROP FUNCTION IF EXISTS spendcap_internal.listed_by_id;
CREATE FUNCTION spendcap_internal.listed_by_id(prefix text, part text, mode text, parent_id text, roots_only boolean, t timestamptz)
RETURNS TABLE (budget_id text, alert_percents integer[], s spendcap.budget_status_result, u integer, wb bigint)
LANGUAGE sql STABLE
AS $fn$
    SELECT y.budget_id, y.alert_percents, y.s,
           coalesce(CASE WHEN y.s IS NULL THEN y.utilisation_permille
                         ELSE spendcap_internal.utilisation((y.s).hard_limits, (y.s).usage, (y.s).reserved) END, -1),
           CASE WHEN y.s IS NULL THEN y.window_breach_count ELSE (y.s).window_breach_count END
      FROM (SELECT x.budget_id, x.alert_percents, x.utilisation_permille, x.window_breach_count,
                   CASE WHEN NOT spendcap_internal.is_current(x.next_reset_at, x.reservations_expire_at, NULL, listed_by_id.t)
                        THEN spendcap_internal.status_row(spendcap_internal.advanced(x, greatest(listed_by_id.t, x.window_start)),
                                                          greatest(listed_by_id.t, x.window_start)) END AS s
              FROM spendcap.budgets AS x
             WHERE spendcap_internal.listable(x.budget_id, x.mode, x.parent_id, listed_by_id.prefix, listed_by_id.part,
                                              listed_by_id.mode, listed_by_id.parent_id, listed_by_id.roots_only)) AS y
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.listed_by_id FROM PUBLIC;

-- listing_row is one row of list_budgets from listed's columns; u_cursor: the utilisation that
-- goes into the cursor (null in id order, whose cursor is the id).
DROP FUNCTION IF EXISTS spendcap_internal.listing_row;
CREATE FUNCTION spendcap_internal.listing_row(budget_id text, s spendcap.budget_status_result, u integer, wb bigint, u_cursor integer)
RETURNS spendcap.budget_listing
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    r spendcap.budget_listing;
BEGIN
    SELECT * INTO b FROM spendcap.budgets AS x WHERE x.budget_id = budget_id;
    r.budget_id := b.budget_id;
    r.parent_id := b.parent_id;
    r.mode := b.mode;
    r.reset_every := b.reset_every;
    r.hard_limits := b.hard_limits;
    r.soft_limits := b.soft_limits;
    r.alert_percents := b.alert_percents;
    IF s IS NULL THEN
        r.window_start := b.window_start;
        r.next_reset_at := b.next_reset_at;
        r.usage := b.usage;
        r.reserved := b.reserved;
        r.window_soft_breach_count := b.window_soft_breach_count;
    ELSE
        r.window_start := s.window_start;
        r.next_reset_at := s.next_reset_at;
        r.usage := s.usage;
        r.reserved := s.reserved;
        r.window_soft_breach_count := s.window_soft_breach_count;
    END IF;
    r.utilisation_permille := nullif(u, -1);
    r.near_limit := u >= spendcap_internal.near_permille(b.alert_percents);
    r.window_breach_count := wb;
    r.children := (SELECT count(*) FROM spendcap.budgets AS k WHERE k.parent_id = b.budget_id);
    r.cursor := CASE WHEN u_cursor IS NULL THEN b.budget_id ELSE u_cursor::text || ':' || b.budget_id END;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.listing_row FROM PUBLIC;

DROP FUNCTION IF EXISTS spendcap_internal.list_budgets;
CREATE FUNCTION spendcap_internal.list_budgets(
    id_prefix   text        DEFAULT NULL,
    id_contains text        DEFAULT NULL,
    mode        text        DEFAULT NULL,
    parent_id   text        DEFAULT NULL,
    roots_only  boolean     DEFAULT false,
    near_limit  boolean     DEFAULT false,
    breached    boolean     DEFAULT false,
    order_by    text        DEFAULT 'id',
    after       text        DEFAULT NULL,
    max_rows    integer     DEFAULT 50,
    at          timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.budget_listing
LANGUAGE plpgsql STABLE
-- The roll and status functions in the scan make the planner expect a costly query and compile it
-- (JIT), which took longer than the scan.
SET jit = off
AS $fn$
#variable_conflict use_variable
DECLARE
    t        timestamptz;
    prefix   text := nullif(id_prefix, '');
    part     text := nullif(id_contains, '');
    by_util  boolean;
    after_id text;
    after_u  integer;
    m        text[];
BEGIN
    IF prefix IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('id_prefix', prefix);
    END IF;
    IF part IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('id_contains', part);
    END IF;
    IF mode IS NOT NULL AND mode NOT IN ('enforce', 'observe') THEN
        PERFORM spendcap_internal.invalid_argument('mode', 'must be enforce, observe or null (any)');
    END IF;
    IF parent_id IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('parent_id', parent_id);
        IF coalesce(roots_only, false) THEN
            PERFORM spendcap_internal.invalid_argument('roots_only', 'budgets with parent_id are not roots: pass one of the two');
        END IF;
    END IF;
    IF order_by IS NULL OR order_by NOT IN ('id', 'utilisation') THEN
        PERFORM spendcap_internal.invalid_argument('order_by', 'must be id or utilisation');
    END IF;
    by_util := order_by = 'utilisation';
    IF after IS NOT NULL THEN
        -- The cursor of a row: its id in id order, "<utilisation or -1>:<id>" in utilisation order.
        IF by_util THEN
            m := regexp_match(after, '^(-1|0|[1-9][0-9]{0,5}):(.*)$');
            IF m IS NULL OR NOT coalesce(spendcap_internal.is_id(m[2]), false) THEN
                PERFORM spendcap_internal.invalid_argument('after', 'must be the cursor of a row listed in utilisation order');
            END IF;
            after_u := m[1]::integer;
            after_id := m[2];
        ELSE
            IF NOT coalesce(spendcap_internal.is_id(after), false) THEN
                PERFORM spendcap_internal.invalid_argument('after', 'must be the cursor of a row listed in id order');
            END IF;
            after_id := after;
        END IF;
    END IF;
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000);
    t := spendcap_internal.instant(at);

    -- Two queries rather than one with a CASE in ORDER BY, so that the id order reads the index.
    IF NOT by_util THEN
        RETURN QUERY
        SELECT (spendcap_internal.listing_row(y.budget_id, y.s, y.u, y.wb, NULL)).*
          FROM spendcap_internal.listed_by_id(prefix, part, mode, parent_id, roots_only, t) AS y
         WHERE (after_id IS NULL OR y.budget_id COLLATE "C" > after_id)
           AND (NOT coalesce(near_limit, false) OR y.u >= spendcap_internal.near_permille(y.alert_percents))
           AND (NOT coalesce(breached, false) OR y.wb > 0)
         ORDER BY y.budget_id COLLATE "C"
         LIMIT max_rows;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT (spendcap_internal.listing_row(y.budget_id, y.s, y.u, y.wb, y.u)).*
      FROM spendcap_internal.listed(prefix, part, mode, parent_id, roots_only, t) AS y
     WHERE (after_id IS NULL OR y.u < after_u OR (y.u = after_u AND y.budget_id COLLATE "C" > after_id))
       AND (NOT coalesce(near_limit, false) OR y.u >= spendcap_internal.near_permille(y.alert_percents))
       AND (NOT coalesce(breached, false) OR y.wb > 0)
     ORDER BY y.u DESC, y.budget_id COLLATE "C"
     LIMIT max_rows;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.list_budgets FROM PUBLIC;
