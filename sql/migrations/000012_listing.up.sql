-- Listing budgets (docs/sql-api.md#list_budgets): each budget stores its utilisation, the highest
-- share of any hard limit that its usage plus reserved takes (in thousandths, rounded down; null
-- without a hard limit), kept by every writer, so that ordering 100,000 budgets by it reads a
-- column instead of every row's JSON. A plain column rather than a generated one: a generated
-- column is recomputed from every limit on every update, which halved the fast path's speed.
ALTER TABLE spendcap.budgets ADD COLUMN utilisation_permille integer;

-- The functions' expression (spendcap_internal.share and utilisation), which do not exist yet.
UPDATE spendcap.budgets AS b SET utilisation_permille = (
    SELECT max(CASE WHEN h.value::bigint > 0
                    THEN least(floor((coalesce((b.usage ->> h.key)::bigint, 0) + coalesce((b.reserved ->> h.key)::bigint, 0))::float8
                                     / h.value::float8 * 1000), 999999)::integer
                    WHEN coalesce((b.usage ->> h.key)::bigint, 0) + coalesce((b.reserved ->> h.key)::bigint, 0) > 0 THEN 999999
                    ELSE 1000 END)
      FROM jsonb_each_text(b.hard_limits) AS h)
 WHERE b.hard_limits <> '{}';

-- Pages in byte order and id prefixes read this index rather than sorting the table.
CREATE INDEX budgets_budget_id_bytes_idx ON spendcap.budgets (budget_id COLLATE "C");

-- list_budgets finds the budgets whose window or earliest reservation is over without a scan
-- (next_reset_at has its index since the first migration). The column changes only when the
-- earliest reservation does, so most reserve calls keep their HOT update.
CREATE INDEX budgets_reservations_expire_at_idx ON spendcap.budgets (reservations_expire_at)
    WHERE reservations_expire_at IS NOT NULL;

CREATE TYPE spendcap.budget_listing AS (
    budget_id                text,
    parent_id                text,
    mode                     text,
    reset_every              text,
    window_start             timestamptz,
    next_reset_at            timestamptz,
    hard_limits              jsonb,
    soft_limits              jsonb,
    usage                    jsonb,
    reserved                 jsonb,
    alert_percents           integer[],
    utilisation_permille     integer,
    near_limit               boolean,
    window_breach_count      bigint,
    window_soft_breach_count bigint,
    children                 bigint,
    cursor                   text
);
COMMENT ON COLUMN spendcap.budget_listing.parent_id IS 'nullable: null for a budget without a parent';
COMMENT ON COLUMN spendcap.budget_listing.reset_every IS 'nullable: null when the budget has one window forever';
COMMENT ON COLUMN spendcap.budget_listing.next_reset_at IS 'nullable: null when the budget has no reset period';
COMMENT ON COLUMN spendcap.budget_listing.alert_percents IS 'nullable: null when the budget has none';
COMMENT ON COLUMN spendcap.budget_listing.utilisation_permille IS 'nullable: null for a budget without a hard limit';
