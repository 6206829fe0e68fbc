DROP FUNCTION IF EXISTS spendcap.budget_gauges;
DROP FUNCTION IF EXISTS spendcap_internal.budget_gauges;
DROP TYPE IF EXISTS spendcap.budget_gauge;
