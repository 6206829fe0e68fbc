DROP FUNCTION IF EXISTS spendcap.list_budgets;
DROP FUNCTION IF EXISTS spendcap_internal.list_budgets;
DROP FUNCTION IF EXISTS spendcap_internal.listing_row;
DROP FUNCTION IF EXISTS spendcap_internal.listed;
DROP FUNCTION IF EXISTS spendcap_internal.listed_by_id;
DROP TYPE spendcap.budget_listing;
DROP INDEX spendcap.budgets_budget_id_bytes_idx;
DROP INDEX spendcap.budgets_reservations_expire_at_idx;
ALTER TABLE spendcap.budgets DROP COLUMN utilisation_permille;
