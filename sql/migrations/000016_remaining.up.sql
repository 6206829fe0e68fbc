-- Remaining in every admission outcome (docs/semantics.md#remaining): for each dimension of the
-- call's deltas that a budget of the charged set hard-limits, the least that any of them has left,
-- as the call leaves them, so that a caller answers "how much is left" without a second call.
-- The last column of each outcome type (docs/sql-api.md: result types only gain columns at the end).
ALTER TYPE spendcap.usage_outcome ADD ATTRIBUTE remaining jsonb;
ALTER TYPE spendcap.reserve_outcome ADD ATTRIBUTE remaining jsonb;
ALTER TYPE spendcap.batch_result ADD ATTRIBUTE remaining jsonb;
COMMENT ON COLUMN spendcap.usage_outcome.remaining IS 'nullable: null in a replay of an outcome stored before remaining existed';
COMMENT ON COLUMN spendcap.reserve_outcome.remaining IS 'nullable: null in a replay of an outcome stored before remaining existed';
COMMENT ON COLUMN spendcap.batch_result.remaining IS 'nullable: null when the item failed';
