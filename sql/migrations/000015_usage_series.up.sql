-- Usage series (docs/semantics.md#usage-series): a budget may record its usage per hour or per
-- day. The running bucket lives on the budget row, as its window does: series_start and
-- series_next_at bound it, and series_base is what the budget's usage held when it started (less
-- the usage of every window that closed since), so that the bucket's usage is usage minus
-- series_base. A write adds to usage alone; only the first call after series_next_at closes the
-- bucket into usage_series, as the first call after next_reset_at rolls the window. All four are
-- null when the budget has no series.
ALTER TABLE spendcap.budgets
    ADD COLUMN series_every   text,
    ADD COLUMN series_start   timestamptz,
    ADD COLUMN series_next_at timestamptz,
    ADD COLUMN series_base    jsonb,
    ADD CONSTRAINT budgets_series_check CHECK (series_every IN ('1 hour', '1 day')
        AND series_start IS NOT NULL AND series_next_at IS NOT NULL AND series_base IS NOT NULL
        OR series_every IS NULL AND series_start IS NULL AND series_next_at IS NULL AND series_base IS NULL);

-- The closed buckets that had usage. Kept for a bounded time: each close deletes its budget's
-- buckets that started before the retention (7 days of hours, 90 days of days).
CREATE TABLE spendcap.usage_series (
    budget_id    text        NOT NULL,
    bucket_start timestamptz NOT NULL,
    bucket_end   timestamptz NOT NULL,
    usage        jsonb       NOT NULL,
    PRIMARY KEY (budget_id, bucket_start)
);

CREATE TYPE spendcap.series_row AS (
    bucket_start timestamptz,
    bucket_end   timestamptz,
    usage        jsonb
);

ALTER TYPE spendcap.budget_status_result ADD ATTRIBUTE usage_series text;
COMMENT ON COLUMN spendcap.budget_status_result.usage_series IS 'nullable: null when the budget records no usage series';
