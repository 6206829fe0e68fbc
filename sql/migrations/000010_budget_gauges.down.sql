DROP FUNCTION IF EXISTS spendcap.budget_gauges;
DROP TYPE IF EXISTS spendcap.budget_gauge;
