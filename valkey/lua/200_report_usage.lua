----------------------------------------------------------------------------------------------
-- report_usage (docs/sql-api.md#report_usage): the fast path, then admit.

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
-- take them (1..32 valid names, valid quantities), else nil. A batch's walk (lock_batch)
-- reads each item's budgets for the same dimensions, in the same order: pairs walks an unchanged
-- table in one order.
local function fast_dims(d)
    if type(d) ~= 'table' then
        return nil
    end
    local dims = {}
    for dim, q in pairs(d) do
        if #dims == 32 or not is_dimension(dim) or not is_quantity(q) then
            return nil
        end
        dims[#dims + 1] = dim
    end
    return #dims > 0 and dims or nil
end

-- fast_read is what fast_report needs of the budget at key for the dimensions dims, as an array:
-- ws, nr, rexp, upd, p, ap, ut, sn, then usage, reserved, hard and soft of each dimension (false for
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
    -- ut: false, since fast_charge saves the batch's budget whole (store computes it).
    local v = { b.window_start, b.next_reset_at or false, b.reservations_expire_at or false, b.updated_at, b.parent_id or false,
                b.alert_percents or false, false, b.series_next_at or false, budget = b }
    for _, dim in ipairs(dims) do
        v[#v + 1] = b.usage[dim] or false
        v[#v + 1] = b.reserved[dim] or false
        v[#v + 1] = b.hard_limits[dim] or false
        v[#v + 1] = b.soft_limits[dim] or false
    end
    return v
end

-- fast_open checks budget v (fast_read) at the call's at: its instant (at, or its window start
-- if later), its parent's id and its alert percents, or nil when it has a roll due, a
-- reservation expired or a usage series bucket ended at that instant (work for the general path).
local function fast_open(v, at)
    local t = math.max(at, tonumber(v[1]))
    if not is_current(tonumber(v[2]), tonumber(v[3]), tonumber(v[8]), t) then
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
        local j = 4 + 4 * i
        if not fits(tonumber(v[j + 1]), tonumber(v[j + 2]), tonumber(v[j + 3]), tonumber(v[j + 4]), ap, d[dim]) then
            return false
        end
    end
    return true
end

-- fast_charge adds deltas d to budget v at instant t, as admit does for an 'ok' outcome: usage,
-- the update time and the utilisation (raised by the charged dimensions, and its listing index
-- entry moved when it changed). A batch's budget is changed and committed; else the fields are
-- set with one HSET.
local function fast_charge(v, dims, d, t)
    local b = v.budget
    if b then
        add_usage(b.usage, dims, d)
        b.updated_at = math.max(b.updated_at, t)
        save(b)
        return
    end
    local set, n = { 'HSET', v.key, false, false, false, false, false, false }, 2
    local old = tonumber(v[7])
    local u = old
    for i, dim in ipairs(dims) do
        local j = 4 + 4 * i
        local new = (tonumber(v[j + 1]) or 0) + d[dim]
        if new ~= 0 then
            set[n + 1], set[n + 2], n = names_of(dim)[1], decimal(new), n + 2
        end
        u = raised_utilisation(u, new, tonumber(v[j + 2]), tonumber(v[j + 3]))
    end
    if t > tonumber(v[4]) then
        set[n + 1], set[n + 2], n = 'upd', decimal(t), n + 2
    end
    -- A budget without ut (stored by a version before the index) gets it from its next save.
    if old ~= nil and u ~= old then
        set[n + 1], set[n + 2], n = 'ut', decimal(u), n + 2
        index_budget(v.key, budget_id_of(v.key), old, u, false)
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

-- fast_least is what budget v (fast_read's array, read before the charge) has left in its i-th
-- dimension of the call after q more (SQL: remaining_into), or nil when it does not limit it.
local function fast_least(v, i, q)
    local j = 4 + 4 * i
    local h = tonumber(v[j + 3])
    if h == nil then
        return nil
    end
    return math.max(0, h - (tonumber(v[j + 1]) or 0) - q - (tonumber(v[j + 2]) or 0))
end

-- fast_remaining is the remaining of an 'ok' outcome for deltas d in dimensions dims charged to
-- budget v and its chain, encoded as JSON with its keys in byte order: in each dimension some
-- budget hard-limits, the least over them. Dimension names need no escaping ([A-Za-z0-9_.:-]).
-- (fast_apply writes the common case, one dimension, into its answer itself.)
local function fast_remaining(v, chain, dims, d)
    local rem, names = {}, {}
    for i, dim in ipairs(dims) do
        local least = fast_least(v, i, d[dim])
        for _, pv in ipairs(chain) do
            local r = fast_least(pv, i, d[dim])
            if r ~= nil and (least == nil or r < least) then
                least = r
            end
        end
        if least ~= nil then
            names[#names + 1] = dim
            rem[dim] = least
        end
    end
    if #names == 0 then
        return '{}'
    end
    table.sort(names)
    for i, dim in ipairs(names) do
        names[i] = '"' .. dim .. '":' .. decimal(rem[dim])
    end
    return '{' .. table.concat(names, ',') .. '}'
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
        -- In a batch the walk (lock_batch) found every budget of the chain among the keys.
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
    -- What remains, from the values read before the charge: one dimension (most calls) without
    -- a table, and written straight into the answer.
    local dim, least, rem = #dims == 1 and dims[1], nil, nil
    if dim then
        local q = d[dim]
        least = fast_least(v, 1, q)
        for i = 1, #chain do
            local r = fast_least(chain[i], 1, q)
            if r ~= nil and (least == nil or r < least) then
                least = r
            end
        end
    else
        rem = fast_remaining(v, chain, dims, d)
    end
    fast_charge(v, dims, d, t)
    for i, pv in ipairs(chain) do
        fast_charge(pv, dims, d, ts[i])
    end
    -- The reply, already encoded (what encode() makes of evaluate's 'ok' outcome, keys sorted):
    -- the generic encoder would take a fifth of the call.
    if least ~= nil then
        return '{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":' .. json_number(v[2])
            .. ',"outcome":"ok","remaining":{"' .. dim .. '":' .. decimal(least) .. '},"replayed":false,"usage":null,"window_start":'
            .. json_number(v[1]) .. '}'
    end
    return '{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":' .. json_number(v[2])
        .. ',"outcome":"ok","remaining":' .. (rem or '{}') .. ',"replayed":false,"usage":null,"window_start":' .. json_number(v[1]) .. '}'
end

local function fast_report(keys, a)
    local id, d, dk = a.budget_id, a.deltas, a.dedup_key
    if (dk ~= nil and dk ~= '') or a.also_charge ~= nil or not is_id(id)
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
