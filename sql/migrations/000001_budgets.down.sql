-- Drops everything of schema v1. The roles stay: they are cluster-wide, other databases may use
-- them, and DROP ROLE would silently remove them from the login roles they were granted to.
DROP SCHEMA IF EXISTS spendcap CASCADE;
DROP SCHEMA IF EXISTS spendcap_internal CASCADE;
