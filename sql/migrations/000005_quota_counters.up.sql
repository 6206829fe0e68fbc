-- Quota counters on the policy row, so that an acquire or a release under contention reads and
-- writes a fixed number of rows instead of counting the policy's leases and window entries. Those
-- tables churn (one insert and one delete per acquire/release pair) and bloat faster than
-- autovacuum cleans them; counting them under the policy lock cut PostgreSQL's throughput on one
-- policy from 3,200 calls/s at 1 client to 770 at 32.
--
-- Like the budgets' reserved aggregate, each counter is exact only until its earliest row is over:
-- active counts the policy's quota_leases rows and is trusted while now < leases_expire_at (no
-- lease has expired yet); in_window counts its quota_window rows and is trusted while no entry has
-- left the window (window_oldest > now - window). After that, the next acquire trims the rows and
-- counts them again. purge_expired may delete rows that are over without touching the counters.
ALTER TABLE spendcap.quota_policies
    ADD COLUMN active           integer NOT NULL DEFAULT 0,
    ADD COLUMN leases_expire_at timestamptz,  -- at most the earliest expires_at of its leases; null when none
    ADD COLUMN in_window        integer NOT NULL DEFAULT 0,
    ADD COLUMN window_oldest    timestamptz;  -- the earliest at of its window entries; null when none

UPDATE spendcap.quota_policies AS p
   SET active = l.n, leases_expire_at = l.first
  FROM (SELECT policy_id, count(*) AS n, min(expires_at) AS first FROM spendcap.quota_leases GROUP BY policy_id) AS l
 WHERE l.policy_id = p.policy_id;

UPDATE spendcap.quota_policies AS p
   SET in_window = w.n, window_oldest = w.first
  FROM (SELECT policy_id, count(*) AS n, min(at) AS first FROM spendcap.quota_window GROUP BY policy_id) AS w
 WHERE w.policy_id = p.policy_id;
