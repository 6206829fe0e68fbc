-- budget_reservations (docs/sql-api.md#budget_reservations): the reservations live on a budget
-- at `at`, soonest to expire first (then by named_id and reservation_id, byte order), at most
-- max_rows (1..1000). A reservation made on a child or on a set that holds this budget is listed
-- with the budget it was made on (named_id): cancel_reservation and settle take that one.
-- Locks and writes: nothing (reads the budget's row and its reservations by expiry).
DROP FUNCTION IF EXISTS spendcap_internal.budget_reservations;
CREATE FUNCTION spendcap_internal.budget_reservations(
    budget_id text,
    max_rows  integer     DEFAULT 100,
    at        timestamptz DEFAULT NULL)
RETURNS SETOF spendcap.reservation_listing
LANGUAGE plpgsql STABLE
AS $fn$
#variable_conflict use_variable
DECLARE
    b spendcap.budgets;
    t timestamptz;
BEGIN
    PERFORM spendcap_internal.check_id('budget_id', budget_id);
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 1000);
    t := spendcap_internal.instant(at);
    b := spendcap_internal.read_budget(budget_id);
    t := greatest(t, b.window_start);
    RETURN QUERY
        SELECT r.reservation_id, r.named_id, r.amounts, r.expires_at
          FROM spendcap.reservations AS r
         WHERE r.budget_id = budget_id AND r.expires_at > t
         ORDER BY r.expires_at, r.named_id COLLATE "C", r.reservation_id COLLATE "C"
         LIMIT max_rows;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.budget_reservations FROM PUBLIC;
