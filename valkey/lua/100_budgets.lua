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
            invalid('soft_limits', encode(dim) .. ' must not exceed its hard limit')
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
    local ap = alert_percents_of('alert_percents', a.alert_percents)
    local t = at_of(a)
    local parent
    if a.parent_id ~= nil then
        parent = read_chain(keys, 2, a.parent_id, id)
    end

    local old = load_budget(key)
    if old then
        if not same_quantities(old.hard, hard) or not same_quantities(old.soft, soft) or old.every ~= every
           or old.tz ~= tz or old.mode ~= mode or old.scope_type ~= a.scope_type or old.scope_id ~= a.scope_id
           or old.ttl ~= ttl or (anchor_arg ~= nil and old.anchor ~= anchor_arg) or old.p ~= a.parent_id
           or encode(old.ap and array(old.ap)) ~= encode(ap) then
            fail('SC005', 'budget_id: budget ' .. encode(id) .. ' exists with a different definition')
        end
        advance(old, instant(old, t))
        return { budget_id = id, created = false, window_start = old.ws, next_reset_at = opt(old.nr) }
    end

    local clock = redis.call('TIME')
    local b = { id = id, hard = hard, soft = soft, tz = tz, mode = mode, scope_type = a.scope_type,
                scope_id = a.scope_id, ttl = ttl, created = t, updated = t, seq = 1, k = -1, ws = t,
                usage = {}, reserved = {}, bc = 0, sbc = 0, wbc = 0, wsbc = 0, p = a.parent_id, nc = 0, ap = ap,
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
    if parent then
        parent.nc = (parent.nc or 0) + 1
        commit(parent)
    end
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
    -- Not null: replaces the percents; an empty array removes them.
    local ap = alert_percents_of('alert_percents', a.alert_percents)
    local b, t = lock_budget(key, id, at_of(a))
    b.hard = hard or b.hard
    b.soft = soft or b.soft
    b.mode = a.mode or b.mode
    if a.alert_percents ~= nil then
        b.ap = ap
    end
    for _, dim in ipairs(sorted_keys(b.soft)) do
        if b.hard[dim] ~= nil and b.hard[dim] < b.soft[dim] then
            invalid(soft == nil and 'hard_limits' or 'soft_limits',
                'soft limit of ' .. encode(dim) .. ' must not exceed its hard limit')
        end
    end
    b.updated = math.max(b.updated, t)
    commit(b)
    return status_row(b, t)
end

-- take_reservation ends a live reservation held on b under field f and returns it, or nil when
-- b holds none there (unknown, expired or already finished).
local function take_reservation(b, f, t)
    local raw = redis.call('HGET', subkey(b._key, 'r'), f)
    local r = raw and cjson.decode(raw)
    if not r or r.exp <= t then
        return nil
    end
    queue(b, 'HDEL', subkey(b._key, 'r'), f)
    b.reserved = minus(b.reserved, r.a)
    return r
end

-- refuse_children raises SC002 for a budget with children (delete_budget, set_parent; what: why).
local function refuse_children(b, what)
    if (b.nc or 0) > 0 then
        invalid('budget_id', encode(b.id) .. ' has ' .. b.nc .. ' children: ' .. what)
    end
end

-- parent_of reads the parent of b for a write of its children count: its base key is keys[i].
local function parent_of(keys, i, b)
    local want = base_of('sc:', b.p)
    if keys[i] ~= want then
        invalid('budget_id', 'key ' .. i .. ' must be ' .. want .. ', the parent of ' .. encode(b.id))
    end
    return read_budget(want, b.p)
end

-- delete_budget removes the budget's keys and ends what it named on the other budgets of its sets
-- (SQL: delete_budget): its reservations there are freed, its ledger entries there forgotten, and
-- its parent counts one child less. Keys: the budget, then its parent and those budgets, in any
-- order (missing_keys names what is not there).
function api.delete_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local at = at_of(a)
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
    local tx, stale = instant(b, at), {}
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
    if b.p then note(b.p, false) end
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
                if x == m.id then take_reservation(m, field(m, id, rid), ts[i]) end
            end
        end
        if m.id == b.p then parent = m end
    end
    for exec, s in pairs(recorded) do
        for _, x in ipairs(s) do
            redis.call('HDEL', subkey(base_of('sc:', x), 'l'), field({ id = x }, id, exec))
        end
    end
    for rid, s in pairs(stale) do
        for _, x in ipairs(s) do
            redis.call('HDEL', subkey(base_of('sc:', x), 'r'), field({ id = x }, id, rid))
        end
    end
    if b.p and not parent then
        parent = read_budget(base_of('sc:', b.p), b.p)
        ms[#ms + 1] = parent
    end
    if parent then
        parent.nc = parent.nc - 1
    end
    -- Dedup keys are left to expire: they belong to this budget's generation, which is gone.
    redis.call('DEL', key, subkey(key, 'tz'), subkey(key, 'r'), subkey(key, 'l'), subkey(key, 'ls'), subkey(key, 'h'))
    for _, m in ipairs(ms) do
        commit(m)
    end
    return { deleted = true }
end

-- set_parent: keys are the budget, the new parent's chain (nearest first) and, last, the old parent.
function api.set_parent(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local b, t = lock_budget(key, id, at_of(a))
    refuse_children(b, 'only a budget without children moves')
    local new = a.parent_id ~= nil and read_chain(keys, 2, a.parent_id, id) or nil
    if b.p ~= a.parent_id then
        if b.p ~= nil then
            local old = parent_of(keys, #keys, b)
            old.nc = old.nc - 1
            queue_store(b, old)
        end
        if new then
            new.nc = (new.nc or 0) + 1
            queue_store(b, new)
        end
    end
    b.p = a.parent_id
    b.updated = math.max(b.updated, t)
    commit(b)
    return status_row(b, t)
end

-- fast_report answers, as PostgreSQL's report_usage does on its fast path, the common call: no
-- dedup key, no also_charge, valid input, and on the budget and every budget of its chain no roll
-- due, no expired reservation and every new total within all limits, so the outcome is 'ok'. It
-- returns nil for anything else before it writes, and the general path (admit) decides and raises
-- the errors. Of each budget it reads only the fields it needs, with one HMGET (fast_read), and
-- writes only usage and the update time, with one HSET (fast_charge): the budget is never unpacked
-- or packed, and no budget table is built.

-- fits says whether q more in a dimension where a budget has usage u, reserved r, hard limit h and
-- soft limit s (nil: none) and alert percents ap leaves its total within all its limits and
-- reaches none of the percents.
local function fits(u, r, h, s, ap, q)
    local new = (u or 0) + q
    return new + (r or 0) <= room(h, s)
        -- A call that raises a threshold event is the general path's (alert).
        and not (ap ~= nil and crosses(u, new, h, ap))
end

-- fast_dims are the dimensions of deltas d, in the order pairs gives them, when the fast path can
-- take them (1..32 valid names, valid quantities), else nil. A batch's walk (batch_missing_keys)
-- reads each item's budgets for the same dimensions, in the same order: pairs walks an unchanged
-- table in one order.
local function fast_dims(d)
    if type(d) ~= 'table' then
        return nil
    end
    local dims = {}
    for dim, q in pairs(d) do
        if #dims == 32 or not valid_dim(dim) or not valid_qty(q) then
            return nil
        end
        dims[#dims + 1] = dim
    end
    return #dims > 0 and dims or nil
end

-- fast_read is what fast_report needs of the budget at key for the dimensions dims, as an array:
-- ws, nr, rexp, upd, p, ap, then usage, reserved, hard and soft of each dimension (false for
-- none): read_hot's answer. nil when there is no budget there, or one an earlier version stored
-- as a string (the general path stores it anew). In a batch, a budget the batch holds (several
-- items charge it, or an earlier item took the general path on it) is the batch's (.budget),
-- written once when the batch ends: its values come from it. Any other is read and written as by
-- a call of its own, but read by the batch's walk already when this item alone charges it
-- (BATCH.hot, for the same fast_dims).
local function fast_read(key, dims)
    local b = BATCH and BATCH.budgets[key]
    if not b then
        local v = BATCH and BATCH.hot[key] or read_hot(key, dims)
        if v then
            v.key = key
        end
        return v
    end
    local v = { b.ws, b.nr or false, b.rexp or false, b.updated, b.p or false, b.ap or false, budget = b }
    for _, dim in ipairs(dims) do
        v[#v + 1] = b.usage[dim] or false
        v[#v + 1] = b.reserved[dim] or false
        v[#v + 1] = b.hard[dim] or false
        v[#v + 1] = b.soft[dim] or false
    end
    return v
end

-- fast_open checks budget v (fast_read) at the call's at: its instant (at, or its window start
-- if later), its parent's id and its alert percents, or nil when it has a roll due or a
-- reservation expired at that instant (work for the general path).
local function fast_open(v, at)
    local t, nr, rexp = math.max(at, tonumber(v[1])), tonumber(v[2]), tonumber(v[3])
    if (nr ~= nil and t >= nr) or (rexp ~= nil and t >= rexp) then
        return nil
    end
    local ap = v[6] or nil
    if type(ap) == 'string' then
        ap = percents_of(ap)
    end
    return t, v[5] or nil, ap
end

-- fast_fits says whether deltas d (in dimensions dims) fit budget v with alert percents ap.
local function fast_fits(v, ap, dims, d)
    for i, dim in ipairs(dims) do
        local j = 2 + 4 * i
        if not fits(tonumber(v[j + 1]), tonumber(v[j + 2]), tonumber(v[j + 3]), tonumber(v[j + 4]), ap, d[dim]) then
            return false
        end
    end
    return true
end

-- fast_charge adds deltas d to budget v at instant t, as admit does for an 'ok' outcome: usage,
-- and the update time. A batch's budget is changed and committed; else the fields are set with
-- one HSET.
local function fast_charge(v, dims, d, t)
    local b = v.budget
    if b then
        for _, dim in ipairs(dims) do
            local new = (b.usage[dim] or 0) + d[dim]
            if new ~= 0 then
                b.usage[dim] = new
            end
        end
        b.updated = math.max(b.updated, t)
        commit(b)
        return
    end
    local set, n = { 'HSET', v.key, false, false, false, false }, 2
    for i, dim in ipairs(dims) do
        local new = (tonumber(v[3 + 4 * i]) or 0) + d[dim]
        if new ~= 0 then
            set[n + 1], set[n + 2], n = names_of(dim)[1], decimal(new), n + 2
        end
    end
    if t > tonumber(v[4]) then
        set[n + 1], set[n + 2], n = 'upd', decimal(t), n + 2
    end
    if n > 2 then
        redis.call(unpack(set, 1, n))
    end
end

-- json_number is a number of fast_read's array as JSON: its decimal text, or null for none.
local function json_number(x)
    if not x then
        return 'null'
    end
    if type(x) == 'string' then
        return x
    end
    return decimal(x)
end

-- fast_apply is fast_report once the arguments passed: deltas d in dimensions dims (fast_dims) to
-- the budget at keys[1] at instant at (checked), its parents' keys among the others. A batch calls
-- it for the items its walk read (their ids, keys, dimensions and instant checked there).
local function fast_apply(keys, d, dims, at)
    -- Read as read_budget does (it raises SC001, which is the general path's to say), and changed
    -- only once every check has passed: in a batch the next item sees the same budgets.
    local v = fast_read(keys[1], dims)
    if not v then
        return nil
    end
    local t, parent, ap = fast_open(v, at)
    if not t or not fast_fits(v, ap, dims, d) then
        return nil
    end
    -- A budget with parents charges them all: they must take the deltas too. Each is read from
    -- the call's keys, nearest first, with its own instant.
    local chain, ts = {}, {}
    while parent ~= nil do
        -- In a batch the walk (batch_missing_keys) found every budget of the chain among the keys.
        local key, declared = base_of('sc:', parent), BATCH ~= nil
        if not declared then
            for i = 2, #keys do
                if keys[i] == key then declared = true end
            end
        end
        local pv = declared and #chain < MAX_DEPTH and fast_read(key, dims)
        if not pv then
            return nil
        end
        local pt, pap
        pt, parent, pap = fast_open(pv, at)
        if not pt or not fast_fits(pv, pap, dims, d) then
            return nil
        end
        chain[#chain + 1], ts[#ts + 1] = pv, pt
    end
    fast_charge(v, dims, d, t)
    for i, pv in ipairs(chain) do
        fast_charge(pv, dims, d, ts[i])
    end
    -- The reply, already encoded (what encode() makes of evaluate's 'ok' outcome, keys sorted):
    -- the generic encoder would take a fifth of the call.
    return '{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":' .. json_number(v[2])
        .. ',"outcome":"ok","replayed":false,"usage":null,"window_start":' .. json_number(v[1]) .. '}'
end

local function fast_report(keys, a)
    local id, d, dk = a.budget_id, a.deltas, a.dedup_key
    if (dk ~= nil and dk ~= '') or a.also_charge ~= nil or not valid_id(id)
       or keys[1] ~= base_of('sc:', id) then
        return nil
    end
    local dims = fast_dims(d)
    if not dims then
        return nil
    end
    local at = a.at_ms
    if at == nil then
        at = now_ms()
    elseif time_problem(at) then
        return nil
    end
    return fast_apply(keys, d, dims, at)
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
    budget_key(keys, id)
    local d = quantities('deltas', a.deltas, true)
    local also = also_of(a, 'also_charge', a.budget_id)
    local at = at_of(a)
    local bs, ids = read_set(keys, id, also)
    local es, named = {}, nil
    for i, b in ipairs(bs) do
        local t = instant(b, at)
        advance(b, t)
        es[i] = evaluate(b, live_reserved(b, t, false), d, 'deltas', false)
        if ids[i] == id then named = i end
    end
    return (set_outcome(es, ids, named))
end

-- release_spend releases the execution from the named budget and from every other budget it was
-- recorded on (the set index), each under its own current-window rule: a budget whose window
-- rolled since has forgotten it.
function api.release_spend(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local ref = a.execution_id
    check_id('execution_id', ref)
    local at = at_of(a)
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
            m.updated = math.max(m.updated, ts[i])
        end
        commit(m)
        if m == b then released = r end
    end
    return { released = released }
end

-- reservation_args checks the arguments that settle and cancel_reservation share.
local function reservation_args(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local rid = a.reservation_id
    check_id('reservation_id', rid)
    return key, id, rid
end

-- take_set is the prologue of settle and cancel_reservation: the named budget's live reservation
-- taken (SC007 when there is none), and the other budgets of its set with their share of it taken
-- too. It returns the budgets that held it, ascending, their instants and the reserved amounts.
local function take_set(keys, key, id, rid, at)
    local b, t = lock_budget(key, id, at)
    local r = take_reservation(b, rid, t)
    if not r then
        fail('SC007', 'reservation_id: reservation ' .. encode(rid) .. ' is unknown, expired or already finished')
    end
    local held, ts = { b }, { t }
    if r.s ~= nil and r.s ~= NULL then
        local ms, mts = read_members(keys, r.s, at)
        for i, m in ipairs(ms) do
            if take_reservation(m, field(m, id, rid), mts[i]) then
                held[#held + 1], ts[#ts + 1] = m, mts[i]
            end
        end
    end
    -- Ascending ids, as every set is evaluated.
    local order = {}
    for i = 1, #held do order[i] = i end
    table.sort(order, function(x, y) return held[x].id < held[y].id end)
    local hs, hts = {}, {}
    for i, j in ipairs(order) do hs[i], hts[i] = held[j], ts[j] end
    return hs, hts, r.a
end

function api.settle(keys, a)
    local key, id, rid = reservation_args(keys, a)
    local d = quantities('actual', a.actual, false)
    local held, ts = take_set(keys, key, id, rid, at_of(a))
    local es, ids, named = {}, {}, nil
    for i, b in ipairs(held) do
        es[i] = evaluate(b, b.reserved, d, 'actual', true)
        ids[i] = b.id
        if b.id == id then named = i end
    end
    local o = set_outcome(es, ids, named)
    for i, b in ipairs(held) do
        local before, wbc = b.usage, b.wbc
        count(b, es[i], ts[i])
        b.usage = plus(b.usage, d)
        b.updated = math.max(b.updated, ts[i])
        alert(b, before, es[i], ts[i], wbc)
        commit(b)
    end
    return o
end

function api.cancel_reservation(keys, a)
    local key, id, rid = reservation_args(keys, a)
    local held, ts, amounts = take_set(keys, key, id, rid, at_of(a))
    for i, b in ipairs(held) do
        b.updated = math.max(b.updated, ts[i])
        commit(b)
    end
    return { released = nonzero(amounts) }
end

function api.reset_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local b, t = lock_budget(key, id, at_of(a))
    close_window(b, { seq = b.seq, ws = b.ws, we = t, usage = b.usage, wbc = b.wbc, wsbc = b.wsbc }, 'manual', t)
    b.seq = b.seq + 1
    b.ws = t
    b.usage = {}
    b.wbc, b.wsbc = 0, 0
    b.lba, b.lbd = nil, nil
    b.fired = nil
    b.updated = math.max(b.updated, t)
    commit(b)
    return { window_seq = b.seq, window_start = b.ws, next_reset_at = opt(b.nr) }
end

-- stream_of is the one key of a call on a slot group's event stream.
local function stream_of(keys)
    local stream = keys[1]
    if type(stream) ~= 'string' or not stream:find('^sc:{[^}]+}:events$') then
        invalid('keys', 'must be one events stream key, sc:{<group>}:events')
    end
    return stream
end

-- events_since answers the events of the slot group whose stream is keys[1] (sc:{g}:events)
-- after after_id, in id order, at most max_rows (1..10000).
function api.events_since(keys, a)
    local stream = stream_of(keys)
    local after, max = a.after_id or 0, a.max_rows or 1000
    if not is_int(after) or after < 0 then
        invalid('after_id', 'must be 0 or an event_id')
    end
    if not is_int(max) or max < 1 or max > 10000 then
        invalid('max_rows', 'must be 1..10000')
    end
    -- The entries hold each event's JSON already: joined, not decoded and encoded again.
    local out = {}
    for i, entry in ipairs(redis.call('XRANGE', stream, string.format('%.0f', after + 1) .. '-0', '+', 'COUNT', max)) do
        out[i] = entry[2][2]
    end
    return '[' .. table.concat(out, ',') .. ']'
end

-- purge_events is purge_expired's events rule on one slot group's stream (SQL: events dispatched
-- and older than EVENT_RETENTION_MS): from the oldest, it deletes the events the worker has handed
-- to its delivery queue (event_id <= through_id, the stream's cursor) that occurred
-- EVENT_RETENTION_MS or more before at, at most max_rows, and stops at the first event that must
-- stay (a stream is trimmed from its start: an event out of time order waits for those before it).
function api.purge_events(keys, a)
    local stream = stream_of(keys)
    local through, max = a.through_id, a.max_rows or 10000
    if not is_int(through) or through < 0 then
        invalid('through_id', 'must be 0 or an event_id')
    end
    if not is_int(max) or max < 1 or max > 100000 then
        invalid('max_rows', 'must be 1..100000')
    end
    local cutoff = at_of(a, true) - EVENT_RETENTION_MS
    local n, last, done = 0, nil, false
    while not done and n < max do
        local want = math.min(max - n, 1000)
        local page = redis.call('XRANGE', stream, last and string.format('(%d-1', last) or '-', '+', 'COUNT', want)
        for _, entry in ipairs(page) do
            local id = tonumber(entry[1]:match('^(%d+)-'))
            if id > through or cjson.decode(entry[2][2]).occurred_at > cutoff then
                done = true
                break
            end
            n, last = n + 1, id
        end
        done = done or #page < want
    end
    if last then
        redis.call('XTRIM', stream, 'MINID', string.format('%d-0', last + 1))
    end
    return { events = n }
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
