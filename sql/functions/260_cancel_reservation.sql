-- cancel_reservation (docs/semantics.md#spend-and-reservations): ends a live reservation without spending and returns the amounts
-- it freed. SC007 when the reservation is unknown, expired or already finished.
-- Locks one budgets row. Writes the budgets row and deletes one reservations row.
DROP FUNCTION IF EXISTS spendcap.cancel_reservation;
CREATE FUNCTION spendcap.cancel_reservation(
    budget_id      text,
    reservation_id text,
    at             timestamptz DEFAULT NULL)
RETURNS spendcap.released_result
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    bs      spendcap.budgets[];
    b       spendcap.budgets;
    t0      timestamptz;
    amounts jsonb;
    r       spendcap.released_result;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.check_id('reservation_id', reservation_id);
    t0 := spendcap_internal.instant(at);
    bs := spendcap_internal.lock_set(budget_id || ARRAY(SELECT x.budget_id FROM spendcap.reservations AS x
                                                       WHERE x.named_id = budget_id AND x.reservation_id = reservation_id), t0);
    FOREACH b IN ARRAY bs LOOP
        amounts := spendcap_internal.take_reservation(budget_id, reservation_id, b.budget_id);
        IF amounts IS NOT NULL THEN
            b.reserved := spendcap_internal.minus(b.reserved, amounts);
            b.updated_at := greatest(b.updated_at, greatest(t0, b.window_start));
            PERFORM spendcap_internal.save(b);
            IF b.budget_id = budget_id THEN
                r.released := spendcap_internal.nonzero(amounts);
            END IF;
        ELSIF b.budget_id = budget_id THEN
            PERFORM spendcap_internal.reservation_not_found(reservation_id);
        END IF;
    END LOOP;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap.cancel_reservation FROM PUBLIC;
GRANT EXECUTE ON FUNCTION spendcap.cancel_reservation TO spendcap_writer;
