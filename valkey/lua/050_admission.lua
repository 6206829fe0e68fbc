----------------------------------------------------------------------------------------------
-- Admission (docs/semantics.md#admission).

-- evaluate runs steps 1-3 for deltas d against total = usage + reserved; force applies whatever
-- the hard check says (settle). It writes nothing and moves no counter.
local function evaluate(b, reserved, d, arg, force)
    local o = { outcome = 'ok', applied = true, dimension = NULL, usage = NULL, limit_value = NULL,
                replayed = false, window_start = b.ws, next_reset_at = opt(b.nr) }
    local dims = sorted_keys(d)
    local totals = {}
    for i, dim in ipairs(dims) do
        totals[i] = (b.usage[dim] or 0) + (reserved[dim] or 0)
        if totals[i] + d[dim] > MAX then
            fail('SC004', arg .. ': ' .. cjson.encode(dim) .. ' would reach ' .. encode(totals[i] + d[dim]) .. ', above 9007199254740991')
        end
    end
    for i, dim in ipairs(dims) do
        local h = b.hard[dim]
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
        local s = b.soft[dim]
        if s ~= nil and totals[i] + d[dim] > s then
            o.outcome, o.dimension, o.limit_value, o.usage = 'soft_breach', dim, s, totals[i] + d[dim]
            return o
        end
    end
    return o
end

local function count(b, o, t)
    if o.outcome == 'hard_breach' then
        b.bc, b.wbc = b.bc + 1, b.wbc + 1
        b.lba, b.lbd = t, o.dimension
    elseif o.outcome == 'soft_breach' then
        b.sbc, b.wsbc = b.sbc + 1, b.wsbc + 1
    end
end

local function canonical(d)
    local parts = {}
    for i, k in ipairs(sorted_keys(d)) do
        parts[i] = k .. '=' .. encode(d[k])
    end
    return table.concat(parts, ',')
end

-- admit is report_usage, record_spend and reserve: they differ only in where applied deltas go.
local function admit(op, keys, a)
    local deltas_arg = op == 'reserve' and 'amounts' or 'deltas'
    local key_arg = op == 'report_usage' and 'dedup_key' or 'idempotency_key'
    local id = a.budget_id
    local key = budget_key(keys, id)
    local ref, ttl
    if op == 'record_spend' then
        ref = a.execution_id
        check_id('execution_id', ref)
    elseif op == 'reserve' then
        ref = a.reservation_id
        check_id('reservation_id', ref)
        ttl = a.ttl_seconds or 300
        if not is_int(ttl) or ttl < 1 or ttl > 86400 then
            invalid('ttl_seconds', 'must be 1..86400')
        end
    end
    local d = quantities(deltas_arg, a[deltas_arg], true)
    local dk = a[key_arg]
    if dk == '' then dk = nil end
    if dk ~= nil then check_id(key_arg, dk) end
    local at = at_of(a)

    local b, t = lock_budget(key, id, at)

    local fp, dkey
    if dk ~= nil then
        fp = op .. ' ' .. (ref or '') .. ' ' .. canonical(d)
        dkey = subkey(key, 'd') .. ':' .. b.gen .. ':' .. dk
        local raw = redis.call('GET', dkey)
        if raw then
            local stored = cjson.decode(raw)
            if stored.exp > t then
                if stored.fp ~= fp then
                    fail('SC003', key_arg .. ': ' .. cjson.encode(dk) .. ' was first used with different arguments')
                end
                stored.r.replayed = true
                return stored.r
            end
        end
    end

    if op == 'reserve' then
        -- An expired reservation may still be in the hash (its removal is queued): not live.
        local raw = redis.call('HGET', subkey(key, 'r'), ref)
        if raw and cjson.decode(raw).exp > t then
            invalid('reservation_id', 'reservation ' .. cjson.encode(ref) .. ' is live')
        end
    end

    local o = evaluate(b, b.reserved, d, deltas_arg, false)
    count(b, o, t)
    if op == 'reserve' then
        o.expires_at = NULL
    end
    if o.applied then
        if op == 'reserve' then
            o.expires_at = t + ttl * 1000
            queue(b, 'HSET', subkey(key, 'r'), ref, encode({ a = d, exp = o.expires_at }))
            b.reserved = plus(b.reserved, d)
            if b.rexp == nil or o.expires_at < b.rexp then b.rexp = o.expires_at end
        else
            b.usage = plus(b.usage, d)
            if op == 'record_spend' then
                -- After a roll the ledger's old entries are being deleted: start afresh.
                local prev = not b._rolled and redis.call('HGET', subkey(key, 'l'), ref) or nil
                queue(b, 'HSET', subkey(key, 'l'), ref, encode(plus(prev and cjson.decode(prev) or {}, d)))
            end
        end
    end
    b.updated = math.max(b.updated, t)
    commit(b)
    if dk ~= nil then
        local exp = t + b.ttl * 1000
        -- The key's logical life is [t, exp) on the calls' clock; the server forgets it a minute
        -- after that on its own clock.
        redis.call('SET', dkey, encode({ fp = fp, r = o, exp = exp }), 'PX', math.max(exp - now_ms(), 0) + 60000)
    end
    return o
end
