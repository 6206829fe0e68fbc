----------------------------------------------------------------------------------------------
-- check_usage (docs/sql-api.md#check_usage).

function api.check_usage(keys, a)
    local id = a.budget_id
    budget_key(keys, id)
    local d = quantities('deltas', a.deltas, true)
    local also = also_of(a, 'also_charge', a.budget_id)
    local at = instant(a)
    local bs, ids = charged_set(keys, id, also)
    local es, named = {}, nil
    for i, b in ipairs(bs) do
        local t = instant_on(b, at)
        advanced(b, t)
        es[i] = evaluate(b, live_reserved(b, t, false), d, 'deltas', false)
        if ids[i] == id then named = i end
    end
    return (set_outcome(es, ids, named))
end
