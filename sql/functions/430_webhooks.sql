-- Webhooks (docs/operations.md#webhooks): the endpoints the jobs worker posts events to, and what
-- the worker calls to hand each event to its delivery queue exactly once. Admin role: a webhook's
-- secret signs what receivers trust.

-- create_webhook registers url for the events of kinds (null: every kind), signed under secret; a
-- url already registered gets the new secret and kinds (how a secret is rotated) and keeps its
-- created_at. Events dispatched from then on are posted to it.
DROP FUNCTION IF EXISTS spendcap_internal.create_webhook;
CREATE FUNCTION spendcap_internal.create_webhook(
    url    text,
    secret text,
    kinds  text[] DEFAULT NULL)
RETURNS spendcap.webhook
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.webhook;
BEGIN
    IF url IS NULL OR url !~ '^https?://[^/?#\s]+[^\s]*$' OR octet_length(url) > 2048 THEN
        PERFORM spendcap_internal.invalid_argument('url', 'must be an http:// or https:// URL of at most 2048 bytes');
    END IF;
    IF secret IS NULL OR octet_length(secret) NOT BETWEEN 16 AND 1024 THEN
        PERFORM spendcap_internal.invalid_argument('secret', 'must be 16..1024 bytes');
    END IF;
    IF kinds IS NOT NULL AND (cardinality(kinds) = 0 OR array_ndims(kinds) <> 1
       OR EXISTS (SELECT FROM unnest(kinds) AS k WHERE k IS NULL OR k NOT IN ('threshold', 'hard_breach', 'window_closed'))) THEN
        PERFORM spendcap_internal.invalid_argument('kinds', 'must be null (every kind) or name threshold, hard_breach or window_closed');
    END IF;
    kinds := ARRAY(SELECT DISTINCT k FROM unnest(kinds) AS k ORDER BY k);
    IF cardinality(kinds) = 0 THEN
        kinds := NULL;
    END IF;
    INSERT INTO spendcap.webhooks AS w (url, secret, kinds) VALUES (url, secret, kinds)
    ON CONFLICT ON CONSTRAINT webhooks_pkey DO UPDATE SET secret = excluded.secret, kinds = excluded.kinds
    RETURNING w.url, w.kinds, w.created_at INTO r;
    RETURN r;
END
$fn$;

-- delete_webhook stops posting to url: deliveries still queued for it are cancelled at their next
-- attempt. deleted = false when no webhook had that url (not an error).
DROP FUNCTION IF EXISTS spendcap_internal.delete_webhook;
CREATE FUNCTION spendcap_internal.delete_webhook(url text)
RETURNS spendcap.deleted_result
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.deleted_result;
BEGIN
    IF url IS NULL THEN
        PERFORM spendcap_internal.invalid_argument('url', 'is required');
    END IF;
    DELETE FROM spendcap.webhooks AS w WHERE w.url = url;
    r.deleted := FOUND;
    RETURN r;
END
$fn$;

-- webhooks lists the registered webhooks by url, without their secrets.
DROP FUNCTION IF EXISTS spendcap_internal.webhooks;
CREATE FUNCTION spendcap_internal.webhooks()
RETURNS SETOF spendcap.webhook
LANGUAGE sql STABLE
AS $fn$
    SELECT w.url, w.kinds, w.created_at FROM spendcap.webhooks AS w ORDER BY w.url COLLATE "C"
$fn$;

-- webhook_secret is the secret a delivery to url signs with, read at each attempt so that a
-- rotated secret applies at once; null once the webhook is deleted.
DROP FUNCTION IF EXISTS spendcap_internal.webhook_secret;
CREATE FUNCTION spendcap_internal.webhook_secret(url text)
RETURNS spendcap.webhook_secret_result
LANGUAGE sql STABLE
AS $fn$
    SELECT ROW((SELECT w.secret FROM spendcap.webhooks AS w WHERE w.url = webhook_secret.url))::spendcap.webhook_secret_result
$fn$;

-- dispatch_events marks up to max_rows (1..10000) events not dispatched yet as dispatched and
-- returns them in id order. The caller enqueues their deliveries in the same transaction, so an
-- event is handed out exactly once however many workers run: events another transaction is
-- dispatching are skipped, and a rolled-back dispatch leaves its events to the next one.
DROP FUNCTION IF EXISTS spendcap_internal.dispatch_events;
CREATE FUNCTION spendcap_internal.dispatch_events(max_rows integer DEFAULT 1000)
RETURNS SETOF spendcap.event
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
BEGIN
    PERFORM spendcap_internal.bounded('max_rows', max_rows, 1, 10000);
    RETURN QUERY
        WITH picked AS (
            SELECT e.event_id FROM spendcap.events AS e WHERE e.dispatched_at IS NULL
             ORDER BY e.event_id LIMIT max_rows FOR UPDATE SKIP LOCKED),
        marked AS (
            UPDATE spendcap.events AS e SET dispatched_at = now() FROM picked AS p WHERE e.event_id = p.event_id
            RETURNING e.*)
        SELECT e.event_id, e.budget_id, e.kind, e.window_seq, e.window_start, e.dimension, e.percent, e.usage,
               e.limit_value, e.window_usage, e.breach_count, e.soft_breach_count, e.closed_by, e.occurred_at
          FROM marked AS e
         ORDER BY e.event_id;
END
$fn$;

-- stream_cursor returns the last event_id of Valkey stream `stream` whose deliveries are enqueued
-- (0 for a stream never read) and locks it until the caller's transaction ends, so that one
-- dispatcher at a time reads on from it.
DROP FUNCTION IF EXISTS spendcap_internal.stream_cursor;
CREATE FUNCTION spendcap_internal.stream_cursor(stream text)
RETURNS spendcap.stream_cursor
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.stream_cursor;
BEGIN
    IF stream IS NULL OR stream = '' OR octet_length(stream) > 1024 THEN
        PERFORM spendcap_internal.invalid_argument('stream', 'must be a stream key of 1..1024 bytes');
    END IF;
    INSERT INTO spendcap.stream_cursors AS c (stream) VALUES (stream) ON CONFLICT ON CONSTRAINT stream_cursors_pkey DO NOTHING;
    SELECT c.stream, c.last_id INTO r FROM spendcap.stream_cursors AS c WHERE c.stream = stream FOR UPDATE;
    RETURN r;
END
$fn$;

-- advance_stream_cursor moves the cursor of `stream` to last_id, in the transaction that enqueued
-- the deliveries of the events up to it; moving it back is SC002.
DROP FUNCTION IF EXISTS spendcap_internal.advance_stream_cursor;
CREATE FUNCTION spendcap_internal.advance_stream_cursor(stream text, last_id bigint)
RETURNS spendcap.stream_cursor
LANGUAGE plpgsql VOLATILE
AS $fn$
#variable_conflict use_variable
DECLARE
    r spendcap.stream_cursor;
BEGIN
    r := spendcap_internal.stream_cursor(stream);
    IF last_id IS NULL OR last_id < r.last_id THEN
        PERFORM spendcap_internal.invalid_argument('last_id', format('must be at least the cursor''s %s', r.last_id));
    END IF;
    UPDATE spendcap.stream_cursors AS c SET last_id = last_id WHERE c.stream = stream;
    r.last_id := last_id;
    RETURN r;
END
$fn$;
REVOKE ALL ON FUNCTION spendcap_internal.create_webhook, spendcap_internal.delete_webhook, spendcap_internal.webhooks, spendcap_internal.webhook_secret,
    spendcap_internal.dispatch_events, spendcap_internal.stream_cursor, spendcap_internal.advance_stream_cursor FROM PUBLIC;
