-- Quota policies (docs/semantics.md#quota-policies): a sliding-window rate limit and a cap on live leases per policy.
-- One acquire locks the policy row, trims and counts its window entries and leases (indexed by
-- policy), and adds one entry and one lease when it admits.

CREATE TABLE spendcap.quota_policies (
    policy_id      text        NOT NULL PRIMARY KEY,
    window_seconds integer     NOT NULL,
    max_requests   integer     NOT NULL,
    max_concurrent integer     NOT NULL,
    lease_seconds  integer     NOT NULL,
    created_at     timestamptz NOT NULL
) WITH (fillfactor = 90);

-- Admissions inside the sliding window; an entry counts while at > now - window.
CREATE TABLE spendcap.quota_window (
    policy_id text        NOT NULL,
    entry     bigint      GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL,
    PRIMARY KEY (policy_id, entry)
);
CREATE INDEX quota_window_at_idx ON spendcap.quota_window (policy_id, at);

CREATE TABLE spendcap.quota_leases (
    policy_id  text        NOT NULL,
    holder_id  text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (policy_id, holder_id)
);
CREATE INDEX quota_leases_expires_at_idx ON spendcap.quota_leases (expires_at);

CREATE TYPE spendcap.quota_policy_result AS (
    policy_id text,
    created   boolean
);

CREATE TYPE spendcap.acquire_result AS (
    admitted       boolean,
    reason         text,
    retry_after_ms bigint,
    in_window      bigint,
    active         bigint
);

CREATE TYPE spendcap.renew_result AS (
    expires_at timestamptz
);

CREATE TYPE spendcap.quota_released_result AS (
    released boolean
);

CREATE TYPE spendcap.quota_status_result AS (
    policy_id      text,
    window_seconds integer,
    max_requests   integer,
    max_concurrent integer,
    lease_seconds  integer,
    in_window      bigint,
    active         bigint,
    holders        text[]
);

REVOKE ALL ON ALL TABLES IN SCHEMA spendcap FROM PUBLIC;
