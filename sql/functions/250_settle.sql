-- settle (docs/semantics.md#spend-and-reservations): ends a live reservation and applies `actual` as usage, whatever it is: the
-- spend happened. The outcome reports the soft/hard result and the breach counters move as in
-- observe mode, but the call never refuses (applied is always true). SC007 when the reservation
-- is unknown, expired or already finished.
-- Locks one budgets row. Writes the budgets row and deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap.settle;
CREATE FUNCTION spendcap.settle(
    budget_id      text,
    reservation_id text,
    actual         jsonb,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.usage_outcome
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    bs      spendcap.budgets[];
    b       spendcap.budgets;
    ids     text[] := '{}';
    ts      timestamptz[] := '{}';
    es      spendcap.reserve_outcome[] := '{}';
    afters  jsonb[] := '{}';
    held    spendcap.budgets[] := '{}';
    t0      timestamptz;
    d       jsonb;
    amounts jsonb;
    e       record;
    o       spendcap.reserve_outcome;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('reservation_id', reservation_id);
    d := spendcap_internal.quantities('actual', actual, false);
    t0 := spendcap_internal.instant(at);
    -- The reservation holds its amounts on every budget of its set, under budget_id.
    bs := spendcap_internal.lock_set(budget_id || ARRAY(SELECT r.budget_id FROM spendcap.reservations AS r
                                                       WHERE r.named_id = budget_id AND r.reservation_id = reservation_id), t0);
    FOREACH b IN ARRAY bs LOOP
        amounts := spendcap_internal.take_reservation(budget_id, reservation_id, b.budget_id);
        IF amounts IS NOT NULL THEN
            b.reserved := spendcap_internal.minus(b.reserved, amounts);
            e := spendcap_internal.evaluate(b, b.reserved, d, 'actual', true);
            ids := ids || b.budget_id;
            held := held || b;
            ts := ts || greatest(t0, b.window_start);
            es := es || e.o;
            afters := afters || e.usage_after;
        END IF;
    END LOOP;
    IF NOT budget_id = ANY (ids) THEN
        PERFORM spendcap_internal.reservation_not_found(reservation_id);
    END IF;
    o := spendcap_internal.set_outcome(es, ids, array_position(ids, budget_id));
    FOR i IN 1 .. cardinality(ids) LOOP
        b := spendcap_internal.counted(held[i], es[i], ts[i]);
        b.usage := afters[i];
        b.updated_at := greatest(b.updated_at, ts[i]);
        PERFORM spendcap_internal.alert(held[i], b, es[i], ts[i]);
        PERFORM spendcap_internal.save(b);
    END LOOP;
    RETURN spendcap_internal.usage_outcome(o);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.settle FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.settle TO spendcap_writer;
