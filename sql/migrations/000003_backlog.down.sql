DROP FUNCTION IF EXISTS spendcap.due_windows;
DROP FUNCTION IF EXISTS spendcap_internal.due_windows;
DROP TYPE IF EXISTS spendcap.backlog_result;
