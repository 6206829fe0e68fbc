-- reserve (docs/semantics.md#spend-and-reservations): admits amounts as a reservation that counts toward the hard and soft checks
-- (via reserved) until it is settled, cancelled or expires at `at + ttl_seconds`.
-- Locks one budgets row. Writes the budgets row, one reservations row when applied, and one
-- dedup_keys row with a key (plus one budget_history row when the call rolls the window).
DROP FUNCTION IF EXISTS spendcap_internal.reserve;
CREATE FUNCTION spendcap_internal.reserve(
    budget_id       text,
    reservation_id  text,
    amounts         jsonb,
    ttl_seconds     integer     DEFAULT 300,
    idempotency_key text        DEFAULT NULL,
    at              timestamptz DEFAULT NULL,
    also_charge     text[]      DEFAULT NULL)
RETURNS spendcap.reserve_outcome
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    RETURN spendcap_internal.admit('reserve', budget_id, reservation_id, amounts, idempotency_key, coalesce(ttl_seconds, 300), at, also_charge);
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.reserve FROM PUBLIC;
