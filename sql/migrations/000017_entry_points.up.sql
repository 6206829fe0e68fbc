-- The deploy gate (sql/functions/001_entry_points.sql): every entry point reads this table, which
-- has no row, so `migrate up` can hold calls at the gate, outside any implementation, while it
-- deploys. Only the owner reads it.
CREATE TABLE IF NOT EXISTS spendcap.deploy_gate ();
REVOKE ALL ON spendcap.deploy_gate FROM PUBLIC;
