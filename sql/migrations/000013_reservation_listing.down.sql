DROP FUNCTION IF EXISTS spendcap.budget_reservations;
DROP TYPE spendcap.reservation_listing;
