DROP FUNCTION IF EXISTS spendcap.budget_reservations;
DROP FUNCTION IF EXISTS spendcap_internal.budget_reservations;
DROP TYPE spendcap.reservation_listing;
