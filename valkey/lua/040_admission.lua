----------------------------------------------------------------------------------------------
-- Admission (docs/semantics.md#admission).

-- evaluate runs steps 1-3 for deltas d against total = usage + reserved; force applies whatever
-- the hard check says (settle). It writes nothing and moves no counter.
local function evaluate(b, reserved, d, arg, force)
    local o = { outcome = 'ok', applied = true, dimension = NULL, usage = NULL, limit_value = NULL,
                replayed = false, window_start = b.window_start, next_reset_at = opt(b.next_reset_at), breach_budget_id = NULL }
    local dims = sorted_keys(d)
    local totals = {}
    for i, dim in ipairs(dims) do
        totals[i] = (b.usage[dim] or 0) + (reserved[dim] or 0)
        if totals[i] + d[dim] > MAX_QTY then
            fail('SC004', arg .. ': ' .. encode(dim) .. ' would reach ' .. encode(totals[i] + d[dim]) .. ', above 9007199254740991')
        end
    end
    for i, dim in ipairs(dims) do
        local h = b.hard_limits[dim]
        if h ~= nil and totals[i] + d[dim] > h then
            o.outcome, o.dimension, o.limit_value = 'hard_breach', dim, h
            if force or b.mode == 'observe' then
                o.usage = totals[i] + d[dim]
            else
                o.applied, o.usage = false, totals[i]
            end
            return o
        end
    end
    for i, dim in ipairs(dims) do
        local s = b.soft_limits[dim]
        if s ~= nil and totals[i] + d[dim] > s then
            o.outcome, o.dimension, o.limit_value, o.usage = 'soft_breach', dim, s, totals[i] + d[dim]
            return o
        end
    end
    return o
end

-- remaining_into folds budget b, as a call leaves it, into rem, the remaining of an outcome for
-- the call's deltas d (SQL: remaining_into): in each dimension b hard-limits, the least of what rem
-- holds and b's max(0, hard - usage - reserved). Start from {} and fold every budget of the set.
local function remaining_into(rem, b, d)
    for dim in pairs(d) do
        local h = b.hard_limits[dim]
        if h ~= nil then
            local r = math.max(0, h - (b.usage[dim] or 0) - (b.reserved[dim] or 0))
            if rem[dim] == nil or rem[dim] > r then
                rem[dim] = r
            end
        end
    end
    return rem
end

local function counted(b, o, t)
    if o.outcome == 'hard_breach' then
        b.breach_count, b.window_breach_count = b.breach_count + 1, b.window_breach_count + 1
        b.last_breach_at, b.last_breach_dim = t, o.dimension
    elseif o.outcome == 'soft_breach' then
        b.soft_breach_count, b.window_soft_breach_count = b.soft_breach_count + 1, b.window_soft_breach_count + 1
    end
end

-- set_outcome is the outcome of a charge to a set whose budgets (ids, ascending) evaluated to es
-- (SQL: set_outcome): the first enforce-mode hard breach refuses the charge (applied = false);
-- else the first hard breach (observe mode), else the first soft breach, else ok with the window
-- of the named budget (index named). breach_budget_id names the budget of a reported breach.
local function set_outcome(es, ids, named)
    local best, rank = nil, 3
    for i = 1, #ids do
        local e, r = es[i], 3
        if e.outcome == 'hard_breach' then
            r = e.applied and 1 or 0
        elseif e.outcome == 'soft_breach' then
            r = 2
        end
        if r < rank then
            best, rank = i, r
        end
    end
    if best then
        es[best].breach_budget_id = ids[best]
        return es[best], best
    end
    return es[named], named
end

-- fingerprint is what a dedup or idempotency key remembers of its call (SQL: fingerprint): the
-- operation, the execution or reservation id, the deltas in byte order of their dimensions and the
-- other budgets the call named (also, as also_of returns them: sorted, once each). The text is
-- Valkey's own: a key is only ever compared with calls of the same backend.
local function fingerprint(op, ref, d, also)
    local parts = {}
    for i, k in ipairs(sorted_keys(d)) do
        parts[i] = k .. '=' .. encode(d[k])
    end
    local fp = op .. ' ' .. (ref or '') .. ' ' .. table.concat(parts, ',')
    if #also > 0 then
        fp = fp .. ' also=' .. table.concat(also, ',')
    end
    return fp
end

-- also_of validates the other ids a call names (SQL: also_of): also_charge (budgets) or
-- also_policies (policies), as arg says; first is the id the call names first. It returns them in
-- ascending order, once each, without first (so [] and [first] name first alone).
local function also_of(a, arg, first)
    local v = a[arg]
    if v == nil or v == NULL then
        return {}
    end
    local what = arg == 'also_charge' and 'budget' or 'policy'
    local n = 0
    if type(v) == 'table' then
        for _ in pairs(v) do n = n + 1 end
    end
    if type(v) ~= 'table' or n ~= #v then
        invalid_argument(arg, 'must be an array of ' .. what .. ' ids')
    end
    if n > MAX_SET then
        invalid_argument(arg, 'a call names at most ' .. MAX_SET .. (what == 'budget' and ' budgets, ancestors included' or ' policies'))
    end
    local seen, also = { [first] = true }, {}
    for i = 1, n do
        check_id(arg, v[i])
        if not seen[v[i]] then
            seen[v[i]] = true
            also[#also + 1] = v[i]
        end
    end
    table.sort(also)
    return also
end

-- declared is the set of the call's keys.
local function declared(keys)
    local k = {}
    for i = 1, #keys do k[keys[i]] = true end
    return k
end

-- undeclared is the ids of ids whose base keys (prefix .. id, base_of) are not among keys, or nil
-- when every one is.
local function undeclared(keys, prefix, ids)
    local have, missing = declared(keys), nil
    for _, x in ipairs(ids) do
        if not have[base_of(prefix, x)] then
            missing = missing or {}
            missing[#missing + 1] = x
        end
    end
    return missing
end

-- missing_keys raises the SC002 of a call whose keys lack budgets it needs (ids, ascending). The
-- message is the protocol the Go client reads to pass them and try again (an ancestor added since
-- it looked); nothing has been written.
-- A batch adds which items lack which (by_item).
local function missing_keys(ids, by_item)
    table.sort(ids)
    invalid_argument('keys', 'missing the keys of budgets ' .. encode(array(ids)) .. ': pass the base key of every budget the call charges'
        .. (by_item and ('; by item ' .. encode(by_item)) or ''))
end

-- set_ids is a charged set made of the budgets ids (the named ones and their chains, in any order,
-- repeats allowed): each once, in ascending byte order, which it returns; SC002 past MAX_SET
-- budgets (SQL: set_ids).
local function set_ids(ids)
    local seen, s = {}, {}
    for _, x in ipairs(ids) do
        if not seen[x] then
            seen[x] = true
            s[#s + 1] = x
        end
    end
    if #s > MAX_SET then
        invalid_argument('also_charge', 'a call names at most ' .. MAX_SET .. ' budgets, ancestors included')
    end
    table.sort(s)
    return s
end

-- charged_set reads the charged set of a call (docs/semantics.md#budget-sets), as SQL's charged_set
-- walks it: budget_id, the budgets of also, and every ancestor of each, once each, in ascending
-- byte order of their ids, which it returns as bs and ids. SC001 for an unknown budget; SC002 for
-- more than MAX_SET budgets, and (missing_keys) when a budget's base key is not among keys, after
-- the walk has found every such budget, so that one retry suffices.
local function charged_set(keys, id, also)
    local have = declared(keys)
    local byid, ids, missing = {}, {}, {}
    local starts = { id }
    for i = 1, #also do starts[i + 1] = also[i] end
    for i, start in ipairs(starts) do
        local cur, arg = start, i == 1 and 'budget_id' or 'also_charge'
        while cur ~= nil and byid[cur] == nil do
            local key = base_of('sc:', cur)
            local ok, b = true, nil
            if have[key] then
                b = load_budget(key)
            else
                missing[#missing + 1] = cur
                -- Read on to find the rest of the chain; on a cluster a key of another slot
                -- cannot be read, and the retry with it is refused as cross-slot.
                ok, b = pcall(load_budget, key)
            end
            if not ok then
                break
            end
            if not b then
                budget_not_found(cur, arg)
            end
            byid[cur] = b
            ids[#ids + 1] = cur
            cur = b.parent_id
        end
    end
    ids = set_ids(ids)
    if #missing > 0 then
        missing_keys(missing)
    end
    local bs = {}
    for i, x in ipairs(ids) do bs[i] = byid[x] end
    return bs, ids
end

-- read_members reads the budgets other than the named one that an entry of the named budget lists
-- (ids: its "s"), ascending, brought to the call's instant; a budget deleted since is skipped,
-- and with current_only one whose window has ended by then too (it is left as it is). Their keys
-- must be among keys (missing_keys).
local function read_members(keys, ids, at, current_only)
    local missing = undeclared(keys, 'sc:', ids)
    if missing then
        missing_keys(missing)
    end
    local sorted = {}
    for i, x in ipairs(ids) do sorted[i] = x end
    table.sort(sorted)
    local ms, ts = {}, {}
    for _, x in ipairs(sorted) do
        local b = read_stored(base_of('sc:', x))
        if b then
            if not (current_only and b.next_reset_at ~= nil and instant_on(b, at) >= b.next_reset_at) then
                ms[#ms + 1] = b
                ts[#ts + 1] = brought(b, at)
            end
        end
    end
    return ms, ts
end

-- others is the ids of bs but named, as an array.
local function others(ids, named)
    local s = array()
    for _, x in ipairs(ids) do
        if x ~= named then s[#s + 1] = x end
    end
    return s
end

-- index_spend records in the named budget's set index that execution ref was recorded on the
-- budgets of s too, until the last of their current windows ends (merged with what the index
-- already holds for ref).
local function index_spend(nb, bs, s, ref)
    local u = 0
    for _, b in ipairs(bs) do
        if b.budget_id ~= nb.budget_id then
            if b.next_reset_at == nil or u == nil then u = nil else u = math.max(u, b.next_reset_at) end
        end
    end
    local raw = redis.call('HGET', subkey(nb._key, 'ls'), ref)
    if raw then
        local prev = cjson.decode(raw)
        local seen = {}
        for _, x in ipairs(s) do seen[x] = true end
        for _, x in ipairs(prev.s) do
            if not seen[x] then s[#s + 1] = x end
        end
        table.sort(s)
        if prev.u == nil or prev.u == NULL or u == nil then u = nil else u = math.max(u, prev.u) end
    end
    queue(nb, 'HSET', subkey(nb._key, 'ls'), ref, encode({ s = s, u = u }))
end

-- admit is report_usage, record_spend and reserve: they differ only in where applied deltas go. A
-- budget alone is a set of one (docs/semantics.md#budget-sets).
local function admit(op, keys, a)
    local deltas_arg = op == 'reserve' and 'amounts' or 'deltas'
    local key_arg = op == 'report_usage' and 'dedup_key' or 'idempotency_key'
    local id = a.budget_id
    budget_key(keys, id)
    local ref, ttl
    if op == 'record_spend' then
        ref = a.execution_id
        check_id('execution_id', ref)
    elseif op == 'reserve' then
        ref = a.reservation_id
        check_id('reservation_id', ref)
        ttl = bounded('ttl_seconds', a.ttl_seconds or 300, 1, 86400)
    end
    local d = quantities(deltas_arg, a[deltas_arg], true)
    local dk = a[key_arg]
    if dk == '' then dk = nil end
    if dk ~= nil then check_id(key_arg, dk) end
    local also = also_of(a, 'also_charge', a.budget_id)
    local at = instant(a)

    local bs, ids = charged_set(keys, id, also)
    local ts, named = {}, nil
    for i, b in ipairs(bs) do
        ts[i] = brought(b, at)
        if ids[i] == id then named = i end
    end
    local nb, t = bs[named], ts[named]

    local fp, dkey
    if dk ~= nil then
        fp = fingerprint(op, ref, d, also)
        dkey = subkey(nb._key, 'd') .. ':' .. nb.gen .. ':' .. dk
        local raw = redis.call('GET', dkey)
        if raw then
            local stored = cjson.decode(raw)
            if stored.exp > t then
                if stored.fp ~= fp then
                    fail('SC003', key_arg .. ': ' .. encode(dk) .. ' was first used with different arguments')
                end
                stored.r.replayed = true
                -- What bringing the set to the instant did (a roll, expired reservations dropped)
                -- is kept, as SQL's lock_budget saves it before the key is looked up: a later call
                -- with an earlier at must find the same state.
                for _, m in ipairs(bs) do
                    if m._moved or #m._writes > 0 then
                        save(m)
                    end
                end
                return stored.r
            end
        end
    end

    if op == 'reserve' then
        -- An expired reservation may still be in the hash (its removal is queued): not live.
        local raw = redis.call('HGET', subkey(nb._key, 'r'), ref)
        if raw and cjson.decode(raw).exp > t then
            invalid_argument('reservation_id', 'reservation ' .. encode(ref) .. ' is live')
        end
    end

    local es = {}
    for i, b in ipairs(bs) do
        es[i] = evaluate(b, b.reserved, d, deltas_arg, false)
    end
    local o, at_breach = set_outcome(es, ids, named)
    if op == 'reserve' then
        o.expires_at = NULL
    end
    if not o.applied then
        -- Refused: only the refusing budget's breach counters move. The others keep what
        -- bringing them to the instant did (a roll, expired reservations dropped), as SQL's
        -- lock_budget saves it: a later call with an earlier at must find the same state.
        local b = bs[at_breach]
        local wbc = b.window_breach_count
        counted(b, o, ts[at_breach])
        b.updated_at = math.max(b.updated_at, ts[at_breach])
        alert(b, b.usage, o, ts[at_breach], wbc)
        for i, m in ipairs(bs) do
            if i == at_breach or m._moved or #m._writes > 0 then
                save(m)
            end
        end
        o.remaining = {}
        for _, m in ipairs(bs) do
            remaining_into(o.remaining, m, d)
        end
    else
        if op == 'reserve' then
            o.expires_at = t + ttl * 1000
        end
        local s = #ids > 1 and others(ids, id) or nil
        for i, b in ipairs(bs) do
            local before, wbc = b.usage, b.window_breach_count
            counted(b, es[i], ts[i])
            local f = field(b, id, ref or '')
            if op == 'reserve' then
                queue(b, 'HSET', subkey(b._key, 'r'), f, encode({ a = d, exp = o.expires_at, s = b == nb and s or nil }))
                b.reserved = plus(b.reserved, d)
                if b.reservations_expire_at == nil or o.expires_at < b.reservations_expire_at then b.reservations_expire_at = o.expires_at end
            else
                b.usage = plus(b.usage, d)
                if op == 'record_spend' then
                    -- After a roll the ledger's old entries are being deleted: start afresh.
                    local prev = not b._rolled and redis.call('HGET', subkey(b._key, 'l'), f) or nil
                    queue(b, 'HSET', subkey(b._key, 'l'), f, encode(plus(prev and cjson.decode(prev) or {}, d)))
                end
            end
            b.updated_at = math.max(b.updated_at, ts[i])
            alert(b, before, es[i], ts[i], wbc)
        end
        if op == 'record_spend' and s then
            index_spend(nb, bs, s, ref)
        end
        o.remaining = {}
        for _, b in ipairs(bs) do
            save(b)
            remaining_into(o.remaining, b, d)
        end
    end
    if dk ~= nil then
        local exp = t + nb.dedup_ttl_seconds * 1000
        -- The key's logical life is [t, exp) on the calls' clock; the server forgets it a minute
        -- after that on its own clock.
        redis.call('SET', dkey, encode({ fp = fp, r = o, exp = exp }), 'PX', math.max(exp - now_ms(), 0) + 60000)
    end
    return o
end
