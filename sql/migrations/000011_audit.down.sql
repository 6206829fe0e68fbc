DROP FUNCTION IF EXISTS spendcap.audit;
DROP FUNCTION IF EXISTS spendcap_internal.audit;
DROP FUNCTION IF EXISTS spendcap_internal.budget_findings;
DROP FUNCTION IF EXISTS spendcap_internal.policy_findings;
DROP FUNCTION IF EXISTS spendcap_internal.orphan_findings;
DROP TYPE spendcap.audit_finding;
