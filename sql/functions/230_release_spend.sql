-- release_spend (docs/semantics.md#spend-and-reservations): subtracts from usage what the execution recorded in the current window
-- (clamped at 0 per dimension), forgets its ledger entries of every window, and returns what was
-- subtracted. Amounts recorded before a roll or a manual reset are never subtracted.
-- Locks the budget's row and those of the other budgets of the execution's set whose window has not
-- ended, in ascending id order; writes them and deletes the execution's spend_ledger rows.
DROP FUNCTION IF EXISTS spendcap_internal.release_spend;
CREATE FUNCTION spendcap_internal.release_spend(
    budget_id    text,
    execution_id text,
    at           timestamptz DEFAULT NULL)
RETURNS spendcap.released_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    bs       spendcap.budgets[];
    b        spendcap.budgets;
    t0       timestamptz;
    t        timestamptz;
    entries  jsonb;
    recorded jsonb;
    released jsonb;
    r        spendcap.released_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('execution_id', execution_id);
    t0 := spendcap_internal.instant(at);
    -- The execution was recorded on every budget of its set, under budget_id. A budget whose window
    -- has ended since has nothing to give back and is left alone, not brought to the instant
    -- (Lua likewise, and its set index forgets such budgets).
    bs := spendcap_internal.lock_set(budget_id || ARRAY(
              SELECT l.budget_id FROM spendcap.spend_ledger AS l JOIN spendcap.budgets AS m ON m.budget_id = l.budget_id
               WHERE l.named_id = budget_id AND l.execution_id = execution_id
                 AND (m.next_reset_at IS NULL OR greatest(t0, m.window_start) < m.next_reset_at)), t0);
    -- Every entry of the execution goes, in one statement; each budget gives back what it
    -- recorded in its current window ("<budget_id> <window_seq>": ids have no space).
    WITH gone AS (
        DELETE FROM spendcap.spend_ledger AS l WHERE l.named_id = budget_id AND l.execution_id = execution_id
        RETURNING l.budget_id, l.window_seq, l.amounts)
    SELECT jsonb_object_agg(g.budget_id || ' ' || g.window_seq, g.amounts) INTO entries FROM gone AS g;
    FOREACH b IN ARRAY bs LOOP
        t := greatest(t0, b.window_start);
        recorded := entries -> (b.budget_id || ' ' || b.window_seq);
        SELECT coalesce(jsonb_object_agg(e.key, least(e.value::bigint, coalesce((b.usage ->> e.key)::bigint, 0)))
                            FILTER (WHERE least(e.value::bigint, coalesce((b.usage ->> e.key)::bigint, 0)) > 0), '{}')
          INTO released
          FROM jsonb_each(coalesce(recorded, '{}')) AS e;
        b.usage := spendcap_internal.minus(b.usage, released);
        -- The other budgets of the set count as written only when they give something back: which
        -- of them still know the execution after their rolls is not part of the contract.
        IF b.budget_id = budget_id OR released <> '{}' THEN
            b.updated_at := greatest(b.updated_at, t);
        END IF;
        PERFORM spendcap_internal.save(b);
        IF b.budget_id = budget_id THEN
            r.released := released;
        END IF;
    END LOOP;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.release_spend FROM PUBLIC;
