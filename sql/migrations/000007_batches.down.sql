DROP FUNCTION IF EXISTS spendcap.report_usage_batch;
DROP FUNCTION IF EXISTS spendcap_internal.report_usage_batch;
DROP FUNCTION IF EXISTS spendcap_internal.quick_batch;
DROP TYPE spendcap.batch_result;
