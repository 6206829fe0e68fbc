-- The quota policies as list_quota_policies lists them (the console's quotas screen).
CREATE TYPE spendcap.quota_listing AS (
    policy_id      text,
    window_seconds integer,
    max_requests   integer,
    max_concurrent integer,
    lease_seconds  integer,
    in_window      bigint,
    active         bigint
);
