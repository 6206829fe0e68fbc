----------------------------------------------------------------------------------------------
-- The API (docs/sql-api.md).

local api = {}

function api.create_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local hard = quantities('hard_limits', a.hard_limits or {}, false)
    local soft = quantities('soft_limits', a.soft_limits or {}, false)
    for _, dim in ipairs(sorted_keys(soft)) do
        if hard[dim] ~= nil and hard[dim] < soft[dim] then
            invalid('soft_limits', cjson.encode(dim) .. ' must not exceed its hard limit')
        end
    end
    local n, unit, every
    if a.reset_every ~= nil then
        n, unit, every = parse_period(a.reset_every)
    elseif a.reset_anchor ~= nil then
        invalid('reset_anchor', 'requires reset_every')
    end
    local tz = a.reset_timezone or 'UTC'
    local z = zone(tz, a.tz_offsets)
    local mode = a.mode or 'enforce'
    if mode ~= 'enforce' and mode ~= 'observe' then
        invalid('mode', 'must be enforce or observe')
    end
    local ttl = a.dedup_ttl_seconds or 86400
    if not is_int(ttl) or ttl < 1 or ttl > 2592000 then
        invalid('dedup_ttl_seconds', 'must be 1..2592000')
    end
    if a.scope_type ~= nil and type(a.scope_type) ~= 'string' then invalid('scope_type', 'must be a string') end
    if a.scope_id ~= nil and type(a.scope_id) ~= 'string' then invalid('scope_id', 'must be a string') end
    local anchor_arg = a.reset_anchor
    if anchor_arg ~= nil and not valid_time(anchor_arg) then
        invalid('reset_anchor', 'must be an integer of Unix milliseconds from 1970-01-01 to 9999-12-31 UTC')
    end
    local t = at_of(a)

    local raw = redis.call('GET', key)
    if raw then
        local b = read_budget(key, id)
        if not same_quantities(b.hard, hard) or not same_quantities(b.soft, soft) or b.every ~= every
           or b.tz ~= tz or b.mode ~= mode or b.scope_type ~= a.scope_type or b.scope_id ~= a.scope_id
           or b.ttl ~= ttl or (anchor_arg ~= nil and b.anchor ~= anchor_arg) then
            fail('SC005', 'budget_id: budget ' .. cjson.encode(id) .. ' exists with a different definition')
        end
        advance(b, instant(b, t))
        return { budget_id = id, created = false, window_start = b.ws, next_reset_at = opt(b.nr) }
    end

    local clock = redis.call('TIME')
    local b = { id = id, hard = hard, soft = soft, tz = tz, mode = mode, scope_type = a.scope_type,
                scope_id = a.scope_id, ttl = ttl, created = t, updated = t, seq = 1, k = -1, ws = t,
                usage = {}, reserved = {}, bc = 0, sbc = 0, wbc = 0, wsbc = 0,
                gen = clock[1] .. '.' .. clock[2], _key = key, _writes = {} }
    if every then
        local anchor = anchor_arg or default_anchor(t, unit, z)
        b.every, b.n, b.unit, b.anchor = every, n, unit, anchor
        b.k, b.ws, b.nr = window_of(anchor, n, unit, z, t, t)
    end
    if type(z) == 'table' then
        for i = 1, #z do setmetatable(z[i], ARRAY) end
        queue(b, 'SET', subkey(key, 'tz'), encode(array(z)))
    end
    commit(b)
    return { budget_id = id, created = true, window_start = b.ws, next_reset_at = opt(b.nr) }
end

function api.set_limits(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local hard, soft
    if a.hard_limits ~= nil then hard = quantities('hard_limits', a.hard_limits, false) end
    if a.soft_limits ~= nil then soft = quantities('soft_limits', a.soft_limits, false) end
    if a.mode ~= nil and a.mode ~= 'enforce' and a.mode ~= 'observe' then
        invalid('mode', 'must be enforce or observe')
    end
    local b, t = lock_budget(key, id, at_of(a))
    b.hard = hard or b.hard
    b.soft = soft or b.soft
    b.mode = a.mode or b.mode
    for _, dim in ipairs(sorted_keys(b.soft)) do
        if b.hard[dim] ~= nil and b.hard[dim] < b.soft[dim] then
            invalid(soft == nil and 'hard_limits' or 'soft_limits',
                'soft limit of ' .. cjson.encode(dim) .. ' must not exceed its hard limit')
        end
    end
    b.updated = math.max(b.updated, t)
    commit(b)
    return status_row(b, t)
end

function api.delete_budget(keys, a)
    local key = budget_key(keys, a.budget_id)
    local existed = redis.call('EXISTS', key) == 1
    -- Dedup keys are left to expire: they belong to this budget's generation, which is gone.
    redis.call('DEL', key, subkey(key, 'tz'), subkey(key, 'r'), subkey(key, 'l'), subkey(key, 'h'))
    return { deleted = existed }
end

-- fast_report answers, as PostgreSQL's report_usage does on its fast path, the common call: no
-- dedup key, valid input, no roll due, no expired reservation, and every new total within all
-- limits, so the outcome is 'ok'. It returns nil for anything else before it writes, and the
-- general path (admit) decides and raises the errors. It skips the general path's generic
-- machinery: about a third of a report's time on the server.
local function fast_report(keys, a)
    local id, d, dk = a.budget_id, a.deltas, a.dedup_key
    if (dk ~= nil and dk ~= '') or not valid_id(id) or type(d) ~= 'table' or keys[1] ~= base_of('sc:', id) then
        return nil
    end
    local at = a.at_ms
    if at == nil then
        at = now_ms()
    elseif time_problem(at) then
        return nil
    end
    local raw = redis.call('GET', keys[1])
    if not raw then
        return nil
    end
    -- Changed in place only after each check, and dropped whenever the call leaves the fast path.
    -- Read as read_budget does (it raises SC001, which is the general path's to say).
    local b = decode_budget(raw)
    b._key, b._writes = keys[1], {}
    local t = math.max(at, b.ws)
    if (b.nr ~= nil and t >= b.nr) or (b.rexp ~= nil and t >= b.rexp) then
        return nil
    end
    local n = 0
    for dim, q in pairs(d) do
        n = n + 1
        if not valid_dim(dim) or not valid_qty(q) then
            return nil
        end
        local new = (b.usage[dim] or 0) + q
        if n > 32 or new + (b.reserved[dim] or 0) > room(b, dim) then
            return nil
        end
        if new ~= 0 then
            b.usage[dim] = new
        end
    end
    if n == 0 then
        return nil
    end
    b.updated = math.max(b.updated, t)
    commit(b)
    -- The reply, already encoded (what encode() makes of evaluate's 'ok' outcome, keys sorted):
    -- the generic encoder would take a fifth of the call.
    return '{"applied":true,"dimension":null,"limit_value":null,"next_reset_at":' .. encode(b.nr)
        .. ',"outcome":"ok","replayed":false,"usage":null,"window_start":' .. encode(b.ws) .. '}'
end

function api.report_usage(keys, a)
    return fast_report(keys, a) or admit('report_usage', keys, a)
end

function api.record_spend(keys, a)
    return admit('record_spend', keys, a)
end

function api.reserve(keys, a)
    return admit('reserve', keys, a)
end

function api.check_usage(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local d = quantities('deltas', a.deltas, true)
    local at = at_of(a)
    local b = read_budget(key, id)
    local t = instant(b, at)
    advance(b, t)
    return evaluate(b, live_reserved(b, t, false), d, 'deltas', false)
end

function api.release_spend(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    check_id('execution_id', a.execution_id)
    local b, t = lock_budget(key, id, at_of(a))
    local released = {}
    -- A roll forgets the ledger with its window: nothing recorded earlier is ever released.
    local raw = not b._rolled and redis.call('HGET', subkey(key, 'l'), a.execution_id) or nil
    if raw then
        for dim, v in pairs(cjson.decode(raw)) do
            local r = math.min(v, b.usage[dim] or 0)
            if r > 0 then released[dim] = r end
        end
    end
    queue(b, 'HDEL', subkey(key, 'l'), a.execution_id)
    b.usage = minus(b.usage, released)
    b.updated = math.max(b.updated, t)
    commit(b)
    return { released = released }
end

local function end_reservation(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    check_id('reservation_id', a.reservation_id)
    return key, id
end

-- take_reservation ends a live reservation and returns its amounts; SC007 when it is unknown,
-- expired or already finished.
local function take_reservation(b, key, rid, t)
    local raw = redis.call('HGET', subkey(key, 'r'), rid)
    local r = raw and cjson.decode(raw)
    if not r or r.exp <= t then
        fail('SC007', 'reservation_id: reservation ' .. cjson.encode(rid) .. ' is unknown, expired or already finished')
    end
    queue(b, 'HDEL', subkey(key, 'r'), rid)
    return r.a
end

function api.settle(keys, a)
    local key, id = end_reservation(keys, a)
    local d = quantities('actual', a.actual, false)
    local b, t = lock_budget(key, id, at_of(a))
    local amounts = take_reservation(b, key, a.reservation_id, t)
    b.reserved = minus(b.reserved, amounts)
    local o = evaluate(b, b.reserved, d, 'actual', true)
    count(b, o, t)
    b.usage = plus(b.usage, d)
    b.updated = math.max(b.updated, t)
    commit(b)
    return o
end

function api.cancel_reservation(keys, a)
    local key, id = end_reservation(keys, a)
    local b, t = lock_budget(key, id, at_of(a))
    local amounts = take_reservation(b, key, a.reservation_id, t)
    b.reserved = minus(b.reserved, amounts)
    b.updated = math.max(b.updated, t)
    commit(b)
    return { released = nonzero(amounts) }
end

function api.reset_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local b, t = lock_budget(key, id, at_of(a))
    close_window(b, { seq = b.seq, ws = b.ws, we = t, usage = b.usage, wbc = b.wbc, wsbc = b.wsbc }, 'manual')
    b.seq = b.seq + 1
    b.ws = t
    b.usage = {}
    b.wbc, b.wsbc = 0, 0
    b.lba, b.lbd = nil, nil
    b.updated = math.max(b.updated, t)
    commit(b)
    return { window_seq = b.seq, window_start = b.ws, next_reset_at = opt(b.nr) }
end

function api.budget_status(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local at = at_of(a)
    local b = read_budget(key, id)
    local t = instant(b, at)
    advance(b, t)
    return status_row(b, t)
end

function api.budget_history(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local max_rows = a.max_rows or 100
    if not is_int(max_rows) or max_rows < 1 or max_rows > 10000 then
        invalid('max_rows', 'must be 1..10000')
    end
    local at = at_of(a)
    local b = read_budget(key, id)
    local t = instant(b, at)
    local rows = array()
    local closed = advance(b, t)
    -- A due window not rolled yet is shown as the schedule will close it.
    if closed and has_activity(closed) then
        rows[1] = history_row(closed, 'schedule')
        max_rows = max_rows - 1
    end
    if max_rows > 0 then
        for _, raw in ipairs(redis.call('LRANGE', subkey(key, 'h'), 0, max_rows - 1)) do
            rows[#rows + 1] = cjson.decode(raw)
        end
    end
    return rows
end
