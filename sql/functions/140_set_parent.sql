-- set_parent (docs/semantics.md#budget-sets): moves a budget that has no children under another
-- parent, or detaches it (parent_id null). Later charges follow the new chain; usage already counted
-- stays where it was counted. Returns the budget_status row.
-- Locks the budget's row and writes it (plus one budget_history row when the call rolls the
-- window), and takes a share lock on the new parent's row.
DROP FUNCTION IF EXISTS spendcap_internal.set_parent;
CREATE FUNCTION spendcap_internal.set_parent(
    budget_id text,
    parent_id text        DEFAULT NULL,
    at        timestamptz DEFAULT NULL)
RETURNS spendcap.budget_status_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    IF parent_id IS NOT NULL THEN
        PERFORM spendcap_internal.check_id('parent_id', parent_id);
    END IF;
    t := spendcap_internal.instant(at);
    b := spendcap_internal.lock_budget(budget_id, t);
    t := greatest(t, b.window_start);
    -- Only a leaf moves: with no children, no chain below it can grow past max_depth or close a cycle.
    PERFORM spendcap_internal.refuse_children(budget_id, 'only a budget without children moves');
    IF parent_id IS NOT NULL THEN
        PERFORM spendcap_internal.lock_parent(parent_id, budget_id);
    END IF;
    b.parent_id := parent_id;
    b.updated_at := greatest(b.updated_at, t);
    PERFORM spendcap_internal.save(b);
    RETURN spendcap_internal.status_row(b, t);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.set_parent FROM PUBLIC;
