-- The functions read the counters: drop the ones that do (the function files of the version
-- migrated to re-create them).
DROP FUNCTION IF EXISTS spendcap.acquire_quota;
DROP FUNCTION IF EXISTS spendcap_internal.acquire_quota;
DROP FUNCTION IF EXISTS spendcap.release_quota;
DROP FUNCTION IF EXISTS spendcap_internal.release_quota;
ALTER TABLE spendcap.quota_policies
    DROP COLUMN IF EXISTS active,
    DROP COLUMN IF EXISTS leases_expire_at,
    DROP COLUMN IF EXISTS in_window,
    DROP COLUMN IF EXISTS window_oldest;
