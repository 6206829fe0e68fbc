-- The entry points of this release (001_entry_points.sql says why they are wrappers): name,
-- arguments and result as pg_get_function_arguments and pg_get_function_result print them,
-- volatility and the role that may call it. A wrapper that already reads so is left as it is.
-- A release may only add to these (a new function; a new argument with a default at the end of
-- one; a new column at the end of a result type, in a migration): docs/operations.md, "What a
-- release may change".
DO $entry_points$
BEGIN
    PERFORM spendcap_internal.ensure_entry_point('acquire_quota',
        'policy_id text, holder_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_policies text[] DEFAULT NULL::text[]',
        'spendcap.acquire_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('advance_stream_cursor',
        'stream text, last_id bigint',
        'spendcap.stream_cursor', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('audit',
        'max_rows integer DEFAULT 10000, repair boolean DEFAULT false',
        'SETOF spendcap.audit_finding', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('budget_gauges',
        'budget_ids text[] DEFAULT ''{}''::text[], top_n integer DEFAULT 0, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.budget_gauge', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('budget_history',
        'budget_id text, max_rows integer DEFAULT 100, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.history_row', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('budget_reservations',
        'budget_id text, max_rows integer DEFAULT 100, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.reservation_listing', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('budget_status',
        'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.budget_status_result', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('cancel_reservation',
        'budget_id text, reservation_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.released_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('check_usage',
        'budget_id text, deltas jsonb, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_charge text[] DEFAULT NULL::text[]',
        'spendcap.usage_outcome', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('create_budget',
        'budget_id text, hard_limits jsonb DEFAULT ''{}''::jsonb, soft_limits jsonb DEFAULT ''{}''::jsonb, reset_every text DEFAULT NULL::text, reset_timezone text DEFAULT ''UTC''::text, reset_anchor timestamp with time zone DEFAULT NULL::timestamp with time zone, mode text DEFAULT ''enforce''::text, scope_type text DEFAULT NULL::text, scope_id text DEFAULT NULL::text, dedup_ttl_seconds integer DEFAULT 86400, at timestamp with time zone DEFAULT NULL::timestamp with time zone, parent_id text DEFAULT NULL::text, alert_percents integer[] DEFAULT NULL::integer[], usage_series text DEFAULT NULL::text, if_exists text DEFAULT ''error''::text',
        'spendcap.create_budget_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('create_quota_policy',
        'policy_id text, window_seconds integer DEFAULT 0, max_requests integer DEFAULT 0, max_concurrent integer DEFAULT 0, lease_seconds integer DEFAULT 60, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.quota_policy_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('create_webhook',
        'url text, secret text, kinds text[] DEFAULT NULL::text[]',
        'spendcap.webhook', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('delete_budget',
        'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.deleted_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('delete_quota_policy',
        'policy_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.deleted_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('delete_webhook',
        'url text',
        'spendcap.deleted_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('dispatch_events',
        'max_rows integer DEFAULT 1000',
        'SETOF spendcap.event', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('due_windows',
        'at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.backlog_result', 's', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('events_since',
        'after_id bigint DEFAULT 0, max_rows integer DEFAULT 1000',
        'SETOF spendcap.event', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('list_budgets',
        'id_prefix text DEFAULT NULL::text, id_contains text DEFAULT NULL::text, mode text DEFAULT NULL::text, parent_id text DEFAULT NULL::text, roots_only boolean DEFAULT false, near_limit boolean DEFAULT false, breached boolean DEFAULT false, order_by text DEFAULT ''id''::text, after text DEFAULT NULL::text, max_rows integer DEFAULT 50, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.budget_listing', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('list_quota_policies',
        'id_prefix text DEFAULT NULL::text, after text DEFAULT NULL::text, max_rows integer DEFAULT 50, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.quota_listing', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('purge_expired',
        'max_rows integer DEFAULT 10000, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.purge_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('quota_status',
        'policy_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.quota_status_result', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('recent_events',
        'budget_id text DEFAULT NULL::text, kind text DEFAULT NULL::text, before_id bigint DEFAULT NULL::bigint, max_rows integer DEFAULT 50',
        'SETOF spendcap.event', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('record_spend',
        'budget_id text, execution_id text, deltas jsonb, idempotency_key text DEFAULT NULL::text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_charge text[] DEFAULT NULL::text[]',
        'spendcap.usage_outcome', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('release_quota',
        'policy_id text, holder_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_policies text[] DEFAULT NULL::text[]',
        'spendcap.quota_released_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('release_spend',
        'budget_id text, execution_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.released_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('renew_quota',
        'policy_id text, holder_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_policies text[] DEFAULT NULL::text[]',
        'spendcap.renew_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('report_usage',
        'budget_id text, deltas jsonb, dedup_key text DEFAULT NULL::text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_charge text[] DEFAULT NULL::text[]',
        'spendcap.usage_outcome', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('report_usage_batch',
        'items jsonb, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.batch_result', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('reserve',
        'budget_id text, reservation_id text, amounts jsonb, ttl_seconds integer DEFAULT 300, idempotency_key text DEFAULT NULL::text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, also_charge text[] DEFAULT NULL::text[]',
        'spendcap.reserve_outcome', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('reset_budget',
        'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.reset_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('roll_due_windows',
        'max_rows integer DEFAULT 1000, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.roll_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('set_limits',
        'budget_id text, hard_limits jsonb DEFAULT NULL::jsonb, soft_limits jsonb DEFAULT NULL::jsonb, mode text DEFAULT NULL::text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, alert_percents integer[] DEFAULT NULL::integer[], usage_series text DEFAULT NULL::text',
        'spendcap.budget_status_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('set_parent',
        'budget_id text, parent_id text DEFAULT NULL::text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.budget_status_result', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('settle',
        'budget_id text, reservation_id text, actual jsonb, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'spendcap.usage_outcome', 'v', 'spendcap_writer');
    PERFORM spendcap_internal.ensure_entry_point('stream_cursor',
        'stream text',
        'spendcap.stream_cursor', 'v', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('usage_series',
        'budget_id text, max_rows integer DEFAULT 200, at timestamp with time zone DEFAULT NULL::timestamp with time zone',
        'SETOF spendcap.series_row', 's', 'spendcap_reader');
    PERFORM spendcap_internal.ensure_entry_point('webhook_secret',
        'url text',
        'spendcap.webhook_secret_result', 's', 'spendcap_admin');
    PERFORM spendcap_internal.ensure_entry_point('webhooks',
        '',
        'SETOF spendcap.webhook', 's', 'spendcap_admin');
END
$entry_points$;
