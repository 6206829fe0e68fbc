----------------------------------------------------------------------------------------------
-- check_usage (docs/sql-api.md#check_usage).

function api.check_usage(keys, a)
    local id = a.budget_id
    budget_key(keys, id)
    local d = quantities('deltas', a.deltas, true)
    local also = also_of(a, 'also_charge', a.budget_id)
    local at = instant(a)
    local bs, ids = charged_set(keys, id, also)
    local es, named, rem = {}, nil, {}
    for i, b in ipairs(bs) do
        local t = instant_on(b, at)
        advanced(b, t)
        b.reserved = live_reserved(b, t, false) -- in memory only: a check writes nothing
        es[i] = evaluate(b, b.reserved, d, 'deltas', false)
        if ids[i] == id then named = i end
        -- As the budgets stand: a check applies nothing.
        remaining_into(rem, b, d)
    end
    local o = set_outcome(es, ids, named)
    o.remaining = rem
    return o
end
