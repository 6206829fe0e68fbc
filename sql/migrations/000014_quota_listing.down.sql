DROP FUNCTION IF EXISTS spendcap.list_quota_policies;
DROP FUNCTION IF EXISTS spendcap_internal.list_quota_policies;
DROP TYPE spendcap.quota_listing;
