-- budget_gauges (docs/sql-api.md#budget_gauges): one row per budget and dimension, what the
-- jobs worker exports as Prometheus gauges.
CREATE TYPE spendcap.budget_gauge AS (
    budget_id   text,
    dimension   text,
    usage       bigint,
    limit_value bigint,
    remaining   bigint
);
COMMENT ON COLUMN spendcap.budget_gauge.limit_value IS 'nullable: null for a dimension without a hard limit';
COMMENT ON COLUMN spendcap.budget_gauge.remaining IS 'nullable: null for a dimension without a hard limit';
