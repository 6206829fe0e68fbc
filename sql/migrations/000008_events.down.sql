DROP FUNCTION IF EXISTS spendcap.recent_events;
DROP FUNCTION IF EXISTS spendcap_internal.recent_events;
DROP FUNCTION IF EXISTS spendcap.events_since;
DROP FUNCTION IF EXISTS spendcap_internal.events_since;
DROP TYPE spendcap.event;
DROP TABLE spendcap.events;
ALTER TYPE spendcap.budget_status_result DROP ATTRIBUTE alert_percents;
ALTER TABLE spendcap.budgets DROP COLUMN alert_percents;
