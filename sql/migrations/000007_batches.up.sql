-- Batches (docs/semantics.md#batches): report_usage_batch returns one row per item, the item's
-- outcome or, when it failed, its error.
CREATE TYPE spendcap.batch_result AS (
    item             integer,
    outcome          text,
    applied          boolean,
    dimension        text,
    usage            bigint,
    limit_value      bigint,
    replayed         boolean,
    window_start     timestamptz,
    next_reset_at    timestamptz,
    breach_budget_id text,
    error_code       text,
    error_message    text
);
COMMENT ON COLUMN spendcap.batch_result.outcome IS 'nullable: null when the item failed';
COMMENT ON COLUMN spendcap.batch_result.applied IS 'nullable: null when the item failed';
COMMENT ON COLUMN spendcap.batch_result.dimension IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.batch_result.usage IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.batch_result.limit_value IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.batch_result.replayed IS 'nullable: null when the item failed';
COMMENT ON COLUMN spendcap.batch_result.window_start IS 'nullable: null when the item failed';
COMMENT ON COLUMN spendcap.batch_result.next_reset_at IS 'nullable: null when the budget has no reset period';
COMMENT ON COLUMN spendcap.batch_result.breach_budget_id IS 'nullable: null for ok';
COMMENT ON COLUMN spendcap.batch_result.error_code IS 'nullable: null unless the item failed';
COMMENT ON COLUMN spendcap.batch_result.error_message IS 'nullable: null unless the item failed';
