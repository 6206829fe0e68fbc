-- Webhook delivery (docs/operations.md#webhooks): the endpoints the jobs worker posts events to,
-- which events it has handed to its delivery queue, and how far it has read each Valkey stream.
CREATE TABLE spendcap.webhooks (
    url        text        PRIMARY KEY,
    secret     text        NOT NULL,
    kinds      text[],
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN spendcap.webhooks.kinds IS 'the event kinds posted to url; null for every kind';

-- Set in the transaction that enqueues the event's deliveries: an event is dispatched once.
ALTER TABLE spendcap.events ADD COLUMN dispatched_at timestamptz;
CREATE INDEX events_undispatched_idx ON spendcap.events (event_id) WHERE dispatched_at IS NULL;

-- The last event_id of each Valkey event stream whose deliveries are enqueued.
CREATE TABLE spendcap.stream_cursors (
    stream  text   PRIMARY KEY,
    last_id bigint NOT NULL DEFAULT 0
);

CREATE TYPE spendcap.webhook AS (
    url        text,
    kinds      text[],
    created_at timestamptz
);
COMMENT ON COLUMN spendcap.webhook.kinds IS 'nullable: null for every kind';

ALTER TYPE spendcap.purge_result ADD ATTRIBUTE events bigint;

CREATE TYPE spendcap.webhook_secret_result AS (
    secret text
);
COMMENT ON COLUMN spendcap.webhook_secret_result.secret IS 'nullable: null when no webhook has that url';

CREATE TYPE spendcap.stream_cursor AS (
    stream  text,
    last_id bigint
);
