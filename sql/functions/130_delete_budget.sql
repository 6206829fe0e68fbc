-- delete_budget (docs/semantics.md#budgets): removes the budget with its usage, ledger, reservations, dedup keys and
-- history. Returns deleted = false when there was no such budget (not an error). `at` is accepted
-- like every call's and has no effect.
-- Locks and deletes the budgets row and every row of the budget in the other tables.
DROP FUNCTION IF EXISTS spendcap.delete_budget;
CREATE FUNCTION spendcap.delete_budget(
    budget_id text,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.deleted_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.deleted_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    -- The budget row first: it is the lock every other call takes before touching the children.
    DELETE FROM spendcap.budgets AS x WHERE x.budget_id = budget_id;
    r.deleted := FOUND;
    IF r.deleted THEN
        DELETE FROM spendcap.budget_history AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.dedup_keys AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.spend_ledger AS x WHERE x.budget_id = budget_id;
        DELETE FROM spendcap.reservations AS x WHERE x.budget_id = budget_id;
    END IF;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.delete_budget FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.delete_budget TO spendcap_admin;
