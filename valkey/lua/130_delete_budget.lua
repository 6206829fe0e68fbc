----------------------------------------------------------------------------------------------
-- delete_budget (docs/sql-api.md#delete_budget).

-- delete_budget removes the budget's keys and ends what it named on the other budgets of its sets
-- (SQL: delete_budget): its reservations there are freed, its ledger entries there forgotten, and
-- its parent counts one child less. Keys: the budget, then its parent and those budgets, in any
-- order (missing_keys names what is not there).
function api.delete_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local at = instant(a)
    local b = load_budget(key)
    if not b then
        return { deleted = false }
    end
    refuse_children(b, 'delete them or move them with set_parent first')
    -- What it named elsewhere: reservation id -> its other budgets (holders), execution id -> its
    -- other budgets. Every budget written must be among the keys: one missing_keys reply names all.
    local held, recorded, holders, need, seen = {}, {}, {}, {}, {}
    local function note(x, holds)
        if holds and not seen[x] then
            seen[x] = true
            holders[#holders + 1] = x
        end
        need[#need + 1] = x
    end
    -- Live at the budget's instant (SQL likewise): an expired reservation holds nothing anywhere,
    -- and its entries on the other budgets are deleted without touching those budgets.
    local tx, stale = instant_on(b, at), {}
    for _, kind in ipairs({ 'r', 'ls' }) do
        local all = redis.call('HGETALL', subkey(key, kind))
        for i = 1, #all, 2 do
            local e = cjson.decode(all[i + 1])
            local s = e.s
            if s ~= nil and s ~= NULL then
                local live = kind == 'r' and e.exp > tx
                if kind == 'ls' then
                    recorded[all[i]] = s
                elseif live then
                    held[all[i]] = s
                else
                    stale[all[i]] = s
                end
                for _, x in ipairs(s) do note(x, live) end
            end
        end
    end
    if b.parent_id then note(b.parent_id, false) end
    local have, missing, listed = declared(keys), {}, {}
    for _, x in ipairs(need) do
        if not have[base_of('sc:', x)] and not listed[x] then
            listed[x] = true
            missing[#missing + 1] = x
        end
    end
    if #missing > 0 then
        missing_keys(missing)
    end
    -- The budgets holding its reservations are brought to the instant and give them back (SQL
    -- locks them); the others only forget entries or count a child less, untouched otherwise.
    local ms, ts = read_members(keys, holders, at)
    local parent
    for i, m in ipairs(ms) do
        for rid, s in pairs(held) do
            for _, x in ipairs(s) do
                if x == m.budget_id then take_reservation(m, field(m, id, rid), ts[i]) end
            end
        end
        if m.budget_id == b.parent_id then parent = m end
    end
    for exec, s in pairs(recorded) do
        for _, x in ipairs(s) do
            redis.call('HDEL', subkey(base_of('sc:', x), 'l'), field({ budget_id = x }, id, exec))
        end
    end
    for rid, s in pairs(stale) do
        for _, x in ipairs(s) do
            redis.call('HDEL', subkey(base_of('sc:', x), 'r'), field({ budget_id = x }, id, rid))
        end
    end
    if b.parent_id and not parent then
        parent = read_budget(base_of('sc:', b.parent_id), b.parent_id)
        ms[#ms + 1] = parent
    end
    if parent then
        parent.child_count = parent.child_count - 1
        queue(parent, 'ZREM', subkey(parent._key, 'k'), id)
    end
    -- Dedup keys are left to expire: they belong to this budget's generation, which is gone.
    redis.call('DEL', key, subkey(key, 'tz'), subkey(key, 'r'), subkey(key, 'l'), subkey(key, 'ls'), subkey(key, 'h'),
        subkey(key, 'us'))
    -- Its util member is the one its stored ut made (none when it was never indexed).
    local ut = b._stored and b._stored.ut
    unindex_budget(key, id, ut or -1)
    for _, m in ipairs(ms) do
        save(m)
    end
    return { deleted = true }
end
