DROP FUNCTION IF EXISTS spendcap.due_windows;
DROP TYPE IF EXISTS spendcap.backlog_result;
