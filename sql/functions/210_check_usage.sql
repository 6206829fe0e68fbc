-- check_usage (docs/semantics.md#admission): the outcome report_usage would have, without writing anything (breach
-- counters included). Locks and writes nothing; reads one budgets row (and its reservations only
-- after one of them expired).
DROP FUNCTION IF EXISTS spendcap_internal.check_usage;
CREATE FUNCTION spendcap_internal.check_usage(
    budget_id text,
    deltas    jsonb,
    at        timestamptz DEFAULT NULL,
    also_charge text[]    DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    t0  timestamptz;
    also text[];
    ids text[];
    es  spendcap.reserve_outcome[] := '{}';
    b spendcap.budgets;
    t timestamptz;
    d jsonb;
    e record;
    dims text[];
    rem jsonb := '{}';
    o spendcap.reserve_outcome;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    d := spendcap_internal.quantities('deltas', deltas, true);
    also := spendcap_internal.also_of(also_charge, budget_id);
    t0 := spendcap_internal.instant(at);
    -- An unknown budget_id is SC001 from charged_set (with also) or from its read below.
    ids := spendcap_internal.charged_set(budget_id, also);
    dims := spendcap_internal.keys_of(d);
    FOR i IN 1 .. cardinality(ids) LOOP
        b := spendcap_internal.read_budget(ids[i]);
        t := greatest(t0, b.window_start);
        b := spendcap_internal.advanced(b, t);
        b.reserved := spendcap_internal.live_reserved(b, t);
        e := spendcap_internal.evaluate(b, b.reserved, d, 'deltas', false);
        es := es || e.o;
        -- As the budgets stand: a check applies nothing.
        rem := spendcap_internal.remaining_into(rem, b.hard_limits, b.usage, b.reserved, dims);
    END LOOP;
    o := spendcap_internal.set_outcome(es, ids, array_position(ids, budget_id));
    o.remaining := rem;
    RETURN spendcap_internal.usage_outcome(o);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.check_usage FROM PUBLIC;
