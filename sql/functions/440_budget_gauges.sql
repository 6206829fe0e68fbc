-- budget_gauges (docs/sql-api.md#budget_gauges): usage, hard limit and remaining of every
-- dimension (hard-limited or used) of the budgets named in budget_ids (at most 1000; unknown ids
-- are skipped) and of the top_n (0..100) budgets that have used the largest share of a hard limit
-- in their current window, as of `at`, rolled without writing like budget_status. Budgets by id,
-- dimensions in byte order. Writes and locks nothing; top_n reads every budget row whose window
-- is still current, so it costs a scan of the budgets table.
DROP FUNCTION IF EXISTS spendcap_internal.budget_gauges;
CREATE FUNCTION spendcap_internal.budget_gauges(
    budget_ids text[]      DEFAULT '{}',
    top_n      integer     DEFAULT 0,
    at         timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.budget_gauge
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    t  timestamptz;
    b  spendcap.budgets;
    st spendcap.budget_status_result;
BEGIN
    IF budget_ids IS NULL OR cardinality(budget_ids) > 1000 OR array_ndims(budget_ids) > 1 THEN
        PERFORM spendcap_internal.invalid_argument('budget_ids', 'must be an array of at most 1000 ids');
    END IF;
    FOR i IN 1 .. coalesce(cardinality(budget_ids), 0) LOOP
        PERFORM spendcap_internal.check_id('budget_ids', budget_ids[i]);
    END LOOP;
    PERFORM spendcap_internal.bounded('top_n', top_n, 0, 100);
    t := spendcap_internal.instant(at);
    FOR b IN
        SELECT x.* FROM spendcap.budgets AS x
         WHERE x.budget_id = ANY (budget_ids) OR x.budget_id IN (
            -- A window that is over has no usage once rolled: only current windows can rank.
            SELECT y.budget_id FROM spendcap.budgets AS y
             WHERE top_n > 0 AND (y.next_reset_at IS NULL OR y.next_reset_at > t) AND y.hard_limits <> '{}'
             ORDER BY (SELECT max(coalesce((y.usage ->> h.key)::numeric, 0) / h.value::numeric)
                         FROM jsonb_each_text(y.hard_limits) AS h WHERE h.value::bigint > 0) DESC NULLS LAST,
                      y.budget_id COLLATE "C"
             LIMIT top_n)
         ORDER BY x.budget_id COLLATE "C"
    LOOP
        st := spendcap_internal.status_row(spendcap_internal.advanced(b, greatest(t, b.window_start)), greatest(t, b.window_start));
        RETURN QUERY
            SELECT st.budget_id, d.dim, coalesce((st.usage ->> d.dim)::bigint, 0), (st.hard_limits ->> d.dim)::bigint,
                   (st.remaining ->> d.dim)::bigint
              FROM (SELECT jsonb_object_keys(st.hard_limits) AS dim
                    UNION SELECT jsonb_object_keys(st.usage)) AS d
             ORDER BY d.dim COLLATE "C";
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.budget_gauges FROM PUBLIC;
