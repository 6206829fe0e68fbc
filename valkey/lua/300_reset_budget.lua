----------------------------------------------------------------------------------------------
-- reset_budget (docs/sql-api.md#reset_budget).

function api.reset_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local b, t = lock_budget(key, id, instant(a))
    close_window(b, window_row(b, t), 'manual', t)
    b.window_seq = b.window_seq + 1
    b.window_start = t
    usage_cleared(b)
    b.window_breach_count, b.window_soft_breach_count = 0, 0
    b.last_breach_at, b.last_breach_dim = nil, nil
    b.fired = nil
    b.updated_at = math.max(b.updated_at, t)
    save(b)
    return { window_seq = b.window_seq, window_start = b.window_start, next_reset_at = opt(b.next_reset_at) }
end
