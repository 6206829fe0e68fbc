-- Result of spendcap.due_windows, the roll job's backlog (for the jobs worker's metrics).
CREATE TYPE spendcap.backlog_result AS (
    due bigint
);
