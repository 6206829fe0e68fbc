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
    b       spendcap.budgets;
    t       timestamptz;
    d       jsonb;
    amounts jsonb;
    e       record;
    o       spendcap.reserve_outcome;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('reservation_id', reservation_id);
    d := spendcap_internal.quantities('actual', actual, false);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.lock_budget(budget_id, t);
    t := greatest(t, b.window_start);
    amounts := spendcap_internal.take_reservation(budget_id, reservation_id);
    b.reserved := spendcap_internal.minus(b.reserved, amounts);
    e := spendcap_internal.evaluate(b, b.reserved, d, 'actual', true);
    o := e.o;
    b := spendcap_internal.counted(b, o, t);
    b.usage := e.usage_after;
    b.updated_at := greatest(b.updated_at, t);
    PERFORM spendcap_internal.save(b);
    RETURN spendcap_internal.usage_outcome(o);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.settle FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.settle TO spendcap_writer;
