-- cancel_reservation (docs/semantics.md#spend-and-reservations): ends a live reservation without spending and returns the amounts
-- it freed. SC007 when the reservation is unknown, expired or already finished.
-- Locks one budgets row. Writes the budgets row and deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap_internal.cancel_reservation;
CREATE FUNCTION spendcap_internal.cancel_reservation(
    budget_id      text,
    reservation_id text,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.released_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    t0    timestamptz;
    taken record;
    b     spendcap.budgets;
    r     spendcap.released_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('reservation_id', reservation_id);
    t0 := spendcap_internal.instant(at);
    taken := spendcap_internal.take_set(budget_id, reservation_id, t0);
    FOREACH b IN ARRAY taken.held LOOP
        b.updated_at := greatest(b.updated_at, t0, b.window_start);
        PERFORM spendcap_internal.save(b);
    END LOOP;
    r.released := spendcap_internal.nonzero(taken.amounts);
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.cancel_reservation FROM PUBLIC;
