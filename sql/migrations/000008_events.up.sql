-- Threshold events (docs/semantics.md#events): alert percents on budgets, and the outbox that
-- admissions write their events to in the same transaction.
ALTER TABLE spendcap.budgets ADD COLUMN alert_percents integer[];
COMMENT ON COLUMN spendcap.budgets.alert_percents IS 'ascending percents 1..1000 of every hard limit that raise a threshold event';
ALTER TYPE spendcap.budget_status_result ADD ATTRIBUTE alert_percents integer[];
COMMENT ON COLUMN spendcap.budget_status_result.alert_percents IS 'nullable: null when the budget raises no threshold events';

CREATE TABLE spendcap.events (
    event_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    budget_id    text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('threshold', 'hard_breach', 'window_closed')),
    window_seq   bigint      NOT NULL,
    window_start timestamptz NOT NULL,
    dimension    text,
    percent      integer,
    usage        bigint,
    limit_value  bigint,
    window_usage jsonb,
    breach_count      bigint,
    soft_breach_count bigint,
    closed_by    text,
    occurred_at  timestamptz NOT NULL,
    -- At most once per (budget, window, kind, dimension, percent): a second insert does nothing.
    -- The window is its seq and start: a budget deleted and created again starts at seq 1 anew.
    CONSTRAINT events_once UNIQUE NULLS NOT DISTINCT (budget_id, window_seq, window_start, kind, dimension, percent)
);
CREATE INDEX events_occurred_at_idx ON spendcap.events (occurred_at);

CREATE TYPE spendcap.event AS (
    event_id     bigint,
    budget_id    text,
    kind         text,
    window_seq   bigint,
    window_start timestamptz,
    dimension    text,
    percent      integer,
    usage        bigint,
    limit_value  bigint,
    window_usage jsonb,
    breach_count      bigint,
    soft_breach_count bigint,
    closed_by    text,
    occurred_at  timestamptz
);
COMMENT ON COLUMN spendcap.event.dimension IS 'nullable: null for window_closed';
COMMENT ON COLUMN spendcap.event.percent IS 'nullable: null unless kind is threshold';
COMMENT ON COLUMN spendcap.event.usage IS 'nullable: null for window_closed';
COMMENT ON COLUMN spendcap.event.limit_value IS 'nullable: null for window_closed';
COMMENT ON COLUMN spendcap.event.window_usage IS 'nullable: null unless kind is window_closed';
COMMENT ON COLUMN spendcap.event.breach_count IS 'nullable: null unless kind is window_closed';
COMMENT ON COLUMN spendcap.event.soft_breach_count IS 'nullable: null unless kind is window_closed';
COMMENT ON COLUMN spendcap.event.closed_by IS 'nullable: null unless kind is window_closed';
