-- The live reservations a budget holds, as budget_reservations lists them (the console's budget
-- page, and whoever must find a reservation to cancel).
CREATE TYPE spendcap.reservation_listing AS (
    reservation_id text,
    named_id       text,
    amounts        jsonb,
    expires_at     timestamptz
);
COMMENT ON COLUMN spendcap.reservation_listing.named_id IS 'the budget the reservation was made on: the budget itself, or the one that charged it as a parent or a member of its set';
