----------------------------------------------------------------------------------------------
-- release_spend (docs/sql-api.md#release_spend).

-- release_spend releases the execution from the named budget and from every other budget it was
-- recorded on (the set index), each under its own current-window rule: a budget whose window
-- rolled since has forgotten it.
function api.release_spend(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local ref = a.execution_id
    check_id('execution_id', ref)
    local at = instant(a)
    local b, t = lock_budget(key, id, at)
    local raw = redis.call('HGET', subkey(key, 'ls'), ref)
    local ms, ts = {}, {}
    if raw then
        queue(b, 'HDEL', subkey(key, 'ls'), ref)
        -- A budget whose window has ended since has nothing to give back: left alone (SQL too).
        ms, ts = read_members(keys, cjson.decode(raw).s, at, true)
    end
    local released
    ms[#ms + 1], ts[#ts + 1] = b, t
    for i, m in ipairs(ms) do
        local f = field(m, id, ref)
        local r = {}
        -- A roll forgets the ledger with its window: nothing recorded earlier is ever released.
        local entry = not m._rolled and redis.call('HGET', subkey(m._key, 'l'), f) or nil
        if entry then
            for dim, v in pairs(cjson.decode(entry)) do
                local q = math.min(v, m.usage[dim] or 0)
                if q > 0 then r[dim] = q end
            end
        end
        queue(m, 'HDEL', subkey(m._key, 'l'), f)
        m.usage = minus(m.usage, r)
        -- The other budgets count as written only when they give something back (SQL: likewise).
        if m == b or next(r) ~= nil then
            m.updated_at = math.max(m.updated_at, ts[i])
        end
        save(m)
        if m == b then released = r end
    end
    return { released = released }
end
