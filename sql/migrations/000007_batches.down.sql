DROP FUNCTION IF EXISTS spendcap.report_usage_batch;
DROP TYPE spendcap.batch_result;
