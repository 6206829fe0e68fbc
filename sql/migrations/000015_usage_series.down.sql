DROP FUNCTION IF EXISTS spendcap.usage_series;
DROP FUNCTION IF EXISTS spendcap_internal.usage_series;
ALTER TYPE spendcap.budget_status_result DROP ATTRIBUTE usage_series;
DROP TYPE spendcap.series_row;
DROP TABLE spendcap.usage_series;
ALTER TABLE spendcap.budgets
    DROP CONSTRAINT budgets_series_check,
    DROP COLUMN series_every,
    DROP COLUMN series_start,
    DROP COLUMN series_next_at,
    DROP COLUMN series_base;
