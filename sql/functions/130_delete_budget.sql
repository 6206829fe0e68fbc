-- delete_budget (docs/semantics.md#budgets, #budget-sets): removes the budget with its usage,
-- ledger, reservations, dedup keys and history, and ends what it named on the other budgets of its
-- sets: its reservations there are freed, its ledger entries there forgotten (the usage it charged
-- stays counted). Returns deleted = false when there was no such budget (not an error). A budget
-- with children is SC002.
-- Locks the budget's row and the rows of the budgets holding its live reservations, in ascending
-- id order; deletes the budget's rows in every table and what it named elsewhere.
DROP FUNCTION IF EXISTS spendcap_internal.delete_budget;
CREATE FUNCTION spendcap_internal.delete_budget(
    budget_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.deleted_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    r       spendcap.deleted_result;
    t0      timestamptz;
    tx      timestamptz;
    id      text;
    b       spendcap.budgets;
    amounts jsonb;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    t0 := spendcap_internal.instant(at);
    -- In ascending order with the budgets that hold its reservations, as every charge locks. The
    -- budget's row FOR UPDATE: it is the lock a create_budget or set_parent naming it as parent
    -- shares until it commits.
    -- Live at the budget's instant: an expired one holds nothing anywhere, and its rows on budgets
    -- no call has brought past its expiry are deleted below without touching those budgets.
    SELECT greatest(t0, x.window_start) INTO tx FROM spendcap.budgets AS x WHERE x.budget_id = budget_id;
    FOR id IN SELECT x FROM (SELECT budget_id AS x UNION
                             SELECT DISTINCT o.budget_id FROM spendcap.reservations AS o
                              WHERE o.named_id = budget_id AND o.expires_at > tx) AS s
              ORDER BY x COLLATE "C" LOOP
        IF id = budget_id THEN
            PERFORM FROM spendcap.budgets AS x WHERE x.budget_id = budget_id FOR UPDATE;
            PERFORM spendcap_internal.refuse_children(budget_id, 'delete them or move them with set_parent first');
        ELSE
            b := spendcap_internal.lock_budget(id, t0);
            WITH gone AS (
                DELETE FROM spendcap.reservations AS o WHERE o.named_id = budget_id AND o.budget_id = id
                RETURNING o.amounts)
            SELECT coalesce(jsonb_object_agg(s.k, s.v), '{}') INTO amounts
              FROM (SELECT e.key AS k, sum(e.value::bigint) AS v FROM gone AS g, jsonb_each(g.amounts) AS e GROUP BY e.key) AS s;
            b.reserved := spendcap_internal.minus(b.reserved, amounts);
            PERFORM spendcap_internal.save(b);
        END IF;
    END LOOP;
    DELETE FROM spendcap.budgets AS x WHERE x.budget_id = budget_id;
    r.deleted := FOUND;
    IF r.deleted THEN
        DELETE FROM spendcap.budget_history AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.usage_series AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.dedup_keys AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.spend_ledger AS x WHERE x.budget_id = budget_id OR x.named_id = budget_id;
        DELETE FROM spendcap.reservations AS x WHERE x.budget_id = budget_id OR x.named_id = budget_id;
    END IF;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.delete_budget FROM PUBLIC;
