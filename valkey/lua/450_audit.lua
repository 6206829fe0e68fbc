----------------------------------------------------------------------------------------------
-- The audit (docs/semantics.md#audit; SQL: 450_audit.sql): one base key's aggregates checked
-- against the keys they sum, and with repair set right in the same FCALL. Valkey keeps no quota
-- counters (a policy counts its ZSETs on every acquire), so a policy has only orphan checks.

-- finding is one audit row; expected and found are JSON values (NULL for none).
local function finding(b_id, p_id, check, dim, expected, found)
    return { budget_id = opt(b_id), policy_id = opt(p_id), check_name = check, dimension = opt(dim),
             expected = expected, found = found, repaired = false }
end

-- orphans are the subkeys of a budget or policy that is gone, with what they hold.
local BUDGET_SUBKEYS = { { 'r', 'reservations' }, { 'l', 'spend_ledger' }, { 'ls', 'spend_index' },
                         { 'h', 'budget_history' }, { 'tz', 'timezone' } }

local POLICY_SUBKEYS = { { 'l', 'quota_leases' }, { 'w', 'quota_window' }, { 'n', 'quota_counter' } }

local function orphan_findings(out, key, id_of, subkeys, repair, is_policy)
    for _, s in ipairs(subkeys) do
        local k = subkey(key, s[1])
        if redis.call('EXISTS', k) == 1 then
            local f = finding(not is_policy and id_of or nil, is_policy and id_of or nil, 'orphan_' .. s[2], nil, 0, 1)
            if repair then
                redis.call('DEL', k)
                f.repaired = true
            end
            out[#out + 1] = f
        end
    end
end

-- budget_findings checks budget b (just loaded) at t as the next call would see it: brought in
-- memory, which queues writes that only a repair commits.
local function budget_findings(out, b, repair)
    local now = now_ms()
    -- As stored: the utilisation check compares what the listing index was made from.
    local current = is_current(b.next_reset_at, b.reservations_expire_at, nil, math.max(now, b.window_start))
    local stored_u = b._stored and b._stored.ut
    local t = brought(b, now)
    local fs = array()
    local all = redis.call('HGETALL', subkey(b._key, 'r'))
    local live, min_exp = {}, nil
    for i = 1, #all, 2 do
        local r = cjson.decode(all[i + 1])
        if r.exp > t then
            live = plus(live, r.a)
            if min_exp == nil or r.exp < min_exp then min_exp = r.exp end
        end
    end
    live = nonzero(live)
    if not same_quantities(live, b.reserved) then
        fs[#fs + 1] = finding(b.budget_id, nil, 'reserved', nil, live, b.reserved)
        b.reserved = live
    end
    if min_exp ~= nil and (b.reservations_expire_at == nil or b.reservations_expire_at > min_exp) then
        fs[#fs + 1] = finding(b.budget_id, nil, 'reservations_expire_at', nil, min_exp, opt(b.reservations_expire_at))
        b.reservations_expire_at = min_exp
    end
    -- After a roll the ledger holds the closed window's entries, which the save deletes.
    if not b._rolled then
        local sums = {}
        local l = redis.call('HGETALL', subkey(b._key, 'l'))
        for i = 2, #l, 2 do
            sums = plus(sums, cjson.decode(l[i]))
        end
        for _, dim in ipairs(sorted_keys(sums)) do
            if sums[dim] > (b.usage[dim] or 0) then
                fs[#fs + 1] = finding(b.budget_id, nil, 'ledger', dim, sums[dim], b.usage[dim] or 0)
                b.usage[dim] = sums[dim]
            end
        end
    end
    if b.parent_id ~= nil and redis.call('EXISTS', base_of('sc:', b.parent_id)) == 0 then
        fs[#fs + 1] = finding(b.budget_id, nil, 'parent', nil, NULL, b.parent_id)
        b.parent_id = nil
    end
    -- The hash's ut is the stored state's utilisation while that is current (list_budgets reads
    -- the others' itself), and the listing index holds the budget under it: store, which a
    -- repair ends with, writes both. Its figure is checked only when nothing else was found (a
    -- wrong aggregate gives a wrong figure); being listed, always. found: the stored figure,
    -- null when the index does not hold the budget under it.
    local u = utilisation(b.hard_limits, b.usage, b.reserved) or -1
    local listed = stored_u ~= nil and redis.call('ZSCORE', index_prefix(b._key) .. ':ids', b.budget_id)
        and redis.call('ZSCORE', index_prefix(b._key) .. ':util', util_member(b.budget_id, stored_u))
    if not listed or #fs == 0 and current and stored_u ~= u then
        fs[#fs + 1] = finding(b.budget_id, nil, 'utilisation', nil, u, listed and stored_u or NULL)
        if repair and b._stored then
            if stored_u ~= nil then
                redis.call('ZREM', index_prefix(b._key) .. ':util', util_member(b.budget_id, stored_u))
            end
            b._stored.ut = nil -- store then indexes the budget afresh
        end
    end
    if repair and (#fs > 0 or b._moved) then
        save(b)
    end
    table.sort(fs, function(x, y) return x.check_name < y.check_name end)
    for _, f in ipairs(fs) do
        f.repaired = repair
        out[#out + 1] = f
    end
end

-- api.audit audits the budget or policy whose base key is keys[1] (a budget's sc:{...}, a policy's
-- sc:q:{...}), or the rows of one that is gone.
function api.audit(keys, a)
    local key = keys[1]
    if type(key) ~= 'string' or key:sub(1, 4) ~= 'sc:{' and key:sub(1, 6) ~= 'sc:q:{' then
        invalid_argument('keys', 'must be the base key of a budget (sc:{...}) or a quota policy (sc:q:{...})')
    end
    local repair = a.repair
    if repair == nil then repair = false end
    if type(repair) ~= 'boolean' then
        invalid_argument('repair', 'must be true or false')
    end
    local out = array()
    if key:sub(1, 5) == 'sc:q:' then
        if redis.call('EXISTS', key) == 0 then
            local close = key:find('}', 1, true)
            orphan_findings(out, key, key:sub(7, close - 1) .. key:sub(close + 1), POLICY_SUBKEYS, repair, true)
        end
        return out
    end
    local b = load_budget(key)
    if b then
        budget_findings(out, b, repair)
    else
        local close = key:find('}', 1, true)
        orphan_findings(out, key, key:sub(5, close - 1) .. key:sub(close + 1), BUDGET_SUBKEYS, repair, false)
    end
    return out
end
