-- take_set is the prologue of settle and cancel_reservation: the budgets holding reservation_id
-- under budget_id (its set) locked in ascending id order and brought to at (lock_set), and the
-- reservation ended on each. It returns those that held it, ascending, with the reservation out of
-- their reserved aggregate (not saved yet), and the amounts it held on the named budget; SC007 when
-- the named budget holds no live one (unknown, expired or already finished).
-- Locks the set's budgets rows; deletes one reservations row per budget.
DROP FUNCTION IF EXISTS spendcap_internal.take_set;
CREATE FUNCTION spendcap_internal.take_set(budget_id text, reservation_id text, at timestamptz,
    OUT held spendcap.budgets[], OUT amounts jsonb)
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    a jsonb;
BEGIN
    held := '{}';
    FOREACH b IN ARRAY spendcap_internal.lock_set(budget_id || ARRAY(
        SELECT r.budget_id FROM spendcap.reservations AS r
         WHERE r.named_id = budget_id AND r.reservation_id = reservation_id), at) LOOP
        a := spendcap_internal.take_reservation(budget_id, reservation_id, b.budget_id);
        CONTINUE WHEN a IS NULL;
        b.reserved := spendcap_internal.minus(b.reserved, a);
        held := held || b;
        IF b.budget_id = budget_id THEN
            amounts := a;
        END IF;
    END LOOP;
    IF amounts IS NULL THEN
        PERFORM spendcap_internal.reservation_not_found(reservation_id);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.take_set FROM PUBLIC;

-- settle (docs/semantics.md#spend-and-reservations): ends a live reservation and applies `actual` as usage, whatever it is: the
-- spend happened. The outcome reports the soft/hard result and the breach counters move as in
-- observe mode, but the call never refuses (applied is always true). SC007 when the reservation
-- is unknown, expired or already finished.
-- Locks one budgets row. Writes the budgets row and deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap_internal.settle;
CREATE FUNCTION spendcap_internal.settle(
    budget_id      text,
    reservation_id text,
    actual         jsonb,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    held    spendcap.budgets[];
    b       spendcap.budgets;
    ids     text[] := '{}';
    ts      timestamptz[] := '{}';
    es      spendcap.reserve_outcome[] := '{}';
    afters  jsonb[] := '{}';
    t0      timestamptz;
    d       jsonb;
    e       record;
    o       spendcap.reserve_outcome;
    dims    text[];
    rem     jsonb := '{}';
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('reservation_id', reservation_id);
    d := spendcap_internal.quantities('actual', actual, false);
    dims := spendcap_internal.keys_of(d);
    t0 := spendcap_internal.instant(at);
    held := (spendcap_internal.take_set(budget_id, reservation_id, t0)).held;
    FOREACH b IN ARRAY held LOOP
        e := spendcap_internal.evaluate(b, b.reserved, d, 'actual', true);
        ids := ids || b.budget_id;
        ts := ts || greatest(t0, b.window_start);
        es := es || e.o;
        afters := afters || e.usage_after;
    END LOOP;
    o := spendcap_internal.set_outcome(es, ids, array_position(ids, budget_id));
    FOR i IN 1 .. cardinality(ids) LOOP
        b := spendcap_internal.counted(held[i], es[i], ts[i]);
        b.usage := afters[i];
        b.updated_at := greatest(b.updated_at, ts[i]);
        PERFORM spendcap_internal.alert(held[i], b, es[i], ts[i]);
        PERFORM spendcap_internal.save(b);
        rem := spendcap_internal.remaining_into(rem, b.hard_limits, b.usage, b.reserved, dims);
    END LOOP;
    o.remaining := rem;
    RETURN spendcap_internal.usage_outcome(o);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.settle FROM PUBLIC;
