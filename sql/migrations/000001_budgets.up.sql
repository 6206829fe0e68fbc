-- spendcap schema v1: budgets (docs/semantics.md#budgets), their window history, dedup keys, the execution ledger,
-- reservations, the result types of the SQL API (docs/sql-api.md) and the three API roles.
--
-- Hot-path design: one budget is one row of spendcap.budgets. Its usage, its aggregate of live
-- reservations and its window counters live in that row, so an admission without a dedup key locks
-- and writes exactly one row; a dedup key adds one insert. The window boundary check is a single
-- timestamptz comparison (next_reset_at); the boundary arithmetic runs only when a window rolls.
-- Child tables carry no foreign keys on purpose: the SQL functions are their only writers, and an FK
-- check would add an index probe to every keyed admission. delete_budget removes the children itself.

CREATE SCHEMA IF NOT EXISTS spendcap;
COMMENT ON SCHEMA spendcap IS 'spendcap: budgets and quotas enforced by SQL functions (see docs/sql-api.md)';

-- Helpers that the API functions call; never granted to anyone.
CREATE SCHEMA IF NOT EXISTS spendcap_internal;
COMMENT ON SCHEMA spendcap_internal IS 'spendcap private helpers; not an API';

CREATE TABLE spendcap.budgets (
    budget_id                text        NOT NULL PRIMARY KEY,
    hard_limits              jsonb       NOT NULL DEFAULT '{}',
    soft_limits              jsonb       NOT NULL DEFAULT '{}',
    reset_every              text,                  -- canonical "<n> <unit>", null = one window forever
    reset_n                  integer,               -- n of reset_every
    reset_unit               text,                  -- singular unit of reset_every
    reset_timezone           text        NOT NULL DEFAULT 'UTC',
    reset_anchor             timestamptz,           -- B_0; null when reset_every is null
    mode                     text        NOT NULL DEFAULT 'enforce',
    scope_type               text,
    scope_id                 text,
    dedup_ttl_seconds        integer     NOT NULL DEFAULT 86400,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    window_seq               bigint      NOT NULL DEFAULT 1,
    window_k                 bigint      NOT NULL DEFAULT -1, -- index k of the boundary B_k that opened the scheduled window; -1 before B_0
    window_start             timestamptz NOT NULL,
    next_reset_at            timestamptz,
    usage                    jsonb       NOT NULL DEFAULT '{}',
    reserved                 jsonb       NOT NULL DEFAULT '{}', -- sum of the reservations rows of this budget
    reservations_expire_at   timestamptz,           -- earliest expires_at among its reservations; null when none
    breach_count             bigint      NOT NULL DEFAULT 0,
    soft_breach_count        bigint      NOT NULL DEFAULT 0,
    window_breach_count      bigint      NOT NULL DEFAULT 0,
    window_soft_breach_count bigint      NOT NULL DEFAULT 0,
    last_breach_at           timestamptz,
    last_breach_dim          text,
    CONSTRAINT budgets_mode_check CHECK (mode IN ('enforce', 'observe')),
    CONSTRAINT budgets_reset_check CHECK ((reset_every IS NULL) = (reset_n IS NULL)
        AND (reset_every IS NULL) = (reset_unit IS NULL)
        AND (reset_every IS NULL) = (reset_anchor IS NULL)),
    CONSTRAINT budgets_ttl_check CHECK (dedup_ttl_seconds BETWEEN 1 AND 2592000)
) WITH (fillfactor = 80); -- room for HOT updates: admissions change no indexed column

-- roll_due_windows finds due budgets without a scan.
CREATE INDEX budgets_next_reset_at_idx ON spendcap.budgets (next_reset_at) WHERE next_reset_at IS NOT NULL;

CREATE TABLE spendcap.budget_history (
    budget_id         text        NOT NULL,
    window_seq        bigint      NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    usage             jsonb       NOT NULL,
    breach_count      bigint      NOT NULL,
    soft_breach_count bigint      NOT NULL,
    closed_by         text        NOT NULL,
    PRIMARY KEY (budget_id, window_seq),
    CONSTRAINT budget_history_closed_by_check CHECK (closed_by IN ('schedule', 'manual'))
);

CREATE TABLE spendcap.dedup_keys (
    budget_id   text        NOT NULL,
    dedup_key   text        NOT NULL,
    fingerprint text        NOT NULL, -- operation, execution/reservation id and deltas, canonical
    result      jsonb       NOT NULL, -- the stored outcome row, replayed on a repeat
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (budget_id, dedup_key)
);
CREATE INDEX dedup_keys_expires_at_idx ON spendcap.dedup_keys (expires_at);

CREATE TABLE spendcap.spend_ledger (
    budget_id    text   NOT NULL,
    execution_id text   NOT NULL,
    window_seq   bigint NOT NULL,
    amounts      jsonb  NOT NULL,
    PRIMARY KEY (budget_id, execution_id, window_seq)
);

CREATE TABLE spendcap.reservations (
    budget_id      text        NOT NULL,
    reservation_id text        NOT NULL,
    amounts        jsonb       NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (budget_id, reservation_id)
);
CREATE INDEX reservations_expires_at_idx ON spendcap.reservations (expires_at);

-- Timezone names already checked against pg_timezone_names, which costs ~30 ms per lookup.
CREATE TABLE spendcap_internal.known_timezones (
    name text NOT NULL PRIMARY KEY
);

-- Result types of the SQL API. Functions return named composites so that their columns may share
-- names with input arguments (docs/sql-api.md) and `select * from spendcap.fn(...)` expands them.
CREATE TYPE spendcap.create_budget_result AS (
    budget_id     text,
    created       boolean,
    window_start  timestamptz,
    next_reset_at timestamptz
);

CREATE TYPE spendcap.budget_status_result AS (
    budget_id                text,
    hard_limits              jsonb,
    soft_limits              jsonb,
    reset_every              text,
    reset_timezone           text,
    reset_anchor             timestamptz,
    mode                     text,
    scope_type               text,
    scope_id                 text,
    dedup_ttl_seconds        integer,
    window_seq               bigint,
    window_start             timestamptz,
    next_reset_at            timestamptz,
    usage                    jsonb,
    reserved                 jsonb,
    remaining                jsonb,
    breach_count             bigint,
    soft_breach_count        bigint,
    window_breach_count      bigint,
    window_soft_breach_count bigint,
    last_breach_at           timestamptz,
    last_breach_dim          text,
    created_at               timestamptz,
    updated_at               timestamptz
);

CREATE TYPE spendcap.usage_outcome AS (
    outcome       text,
    applied       boolean,
    dimension     text,
    usage         bigint,
    limit_value   bigint,
    replayed      boolean,
    window_start  timestamptz,
    next_reset_at timestamptz
);

CREATE TYPE spendcap.reserve_outcome AS (
    outcome       text,
    applied       boolean,
    dimension     text,
    usage         bigint,
    limit_value   bigint,
    replayed      boolean,
    window_start  timestamptz,
    next_reset_at timestamptz,
    expires_at    timestamptz
);

CREATE TYPE spendcap.released_result AS (
    released jsonb
);

CREATE TYPE spendcap.deleted_result AS (
    deleted boolean
);

CREATE TYPE spendcap.reset_result AS (
    window_seq    bigint,
    window_start  timestamptz,
    next_reset_at timestamptz
);

CREATE TYPE spendcap.history_row AS (
    window_seq        bigint,
    window_start      timestamptz,
    window_end        timestamptz,
    usage             jsonb,
    breach_count      bigint,
    soft_breach_count bigint,
    closed_by         text
);

CREATE TYPE spendcap.roll_result AS (
    rolled bigint
);

CREATE TYPE spendcap.purge_result AS (
    dedup_keys   bigint,
    ledger_rows  bigint,
    reservations bigint,
    leases       bigint
);

-- Roles are cluster-wide: create them only when absent (another database may already have them).
-- admin ⊃ writer ⊃ reader, so granting one role is enough for a service.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spendcap_reader') THEN
        CREATE ROLE spendcap_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spendcap_writer') THEN
        CREATE ROLE spendcap_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spendcap_admin') THEN
        CREATE ROLE spendcap_admin NOLOGIN;
    END IF;
END
$roles$;
GRANT spendcap_reader TO spendcap_writer;
GRANT spendcap_writer TO spendcap_admin;

-- The roles reach data only through the functions: schema USAGE, no table privileges.
REVOKE ALL ON SCHEMA spendcap FROM PUBLIC;
REVOKE ALL ON SCHEMA spendcap_internal FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA spendcap FROM PUBLIC;
GRANT USAGE ON SCHEMA spendcap TO spendcap_reader, spendcap_writer, spendcap_admin;
