#!lua name=spendcap
--
-- spendcap budgets as a Valkey Functions library: the semantics of the PL/pgSQL functions in
-- sql/functions (docs/semantics.md), call for call and result for result.
--
-- Call shape (docs/semantics.md): FCALL sc_<name> 1 sc:{<budget_id>} <json args>; the reply is one JSON
-- document; errors are replies "SC00x <argument>: <problem>". Times are integer Unix milliseconds.
--
-- Keys of a budget, all under the hash tag {<budget_id>} so that a budget lives in one slot:
--   sc:{id}              the budget: definition, window, usage, counters (MessagePack: cmsgpack
--                        packs and unpacks it in a seventh of the time cjson plus our exact-integer
--                        JSON encoder took; documents stored as JSON by older versions still read)
--   sc:{id}:tz           its zone's offset table, for IANA zones (JSON array of [from_ms, offset_s])
--   sc:{id}:r            live reservations (HASH reservation_id -> {"a": amounts, "exp": ms})
--   sc:{id}:l            the spend ledger of the current window (HASH execution_id -> amounts)
--   sc:{id}:h            closed windows, newest first, the newest 100 (LIST of JSON)
--   sc:{id}:d:<gen>:<k>  dedup/idempotency keys (JSON), expiring by TTL; <gen> is the budget's
--                        generation, so a deleted and re-created budget never sees old keys.
--
-- Nothing is written before every check of a call has passed: writes are queued and run by
-- commit() at the end, so a call that returns an error leaves no trace (Lua has no rollback).

local MAX = 9007199254740991
local NULL -- cjson.null; the loading environment has no cjson, so it is set on the first call
local DAY = 86400000
local ARRAY = {}
local UNIT_MS = { second = 1000, minute = 60000, hour = 3600000 }
local CALENDAR = { day = true, week = true, month = true, year = true }
local HISTORY_KEPT = 100

local function fail(code, message)
    error({ sc = code .. ' ' .. message }, 0)
end

local function invalid(arg, problem)
    fail('SC002', arg .. ': ' .. problem)
end

local function array(t)
    return setmetatable(t or {}, ARRAY)
end

-- encode writes JSON with exact integers (cjson prints 14 significant digits).
local function encode(v)
    if v == nil or v == NULL then
        return 'null'
    end
    local t = type(v)
    if t == 'boolean' then
        return v and 'true' or 'false'
    elseif t == 'number' then
        -- tostring prints 14 significant digits: exact below 1e14, the rest needs %.0f.
        if v > -1e14 and v < 1e14 then
            return tostring(v + 0)
        end
        return string.format('%.0f', v)
    elseif t == 'string' then
        return cjson.encode(v)
    end
    local parts = {}
    if getmetatable(v) == ARRAY then
        for i = 1, #v do
            parts[i] = encode(v[i])
        end
        return '[' .. table.concat(parts, ',') .. ']'
    end
    local keys = {}
    for k in pairs(v) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    for i, k in ipairs(keys) do
        parts[i] = cjson.encode(k) .. ':' .. encode(v[k])
    end
    return '{' .. table.concat(parts, ',') .. '}'
end

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys) -- byte order: Lua compares strings with strcmp
    return keys
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

----------------------------------------------------------------------------------------------
-- Validation (docs/semantics.md), in the same order as the SQL functions.

local function decode_args(argv)
    local ok, a = pcall(cjson.decode, argv[1] or '')
    if not ok or type(a) ~= 'table' then
        invalid('arguments', 'must be one JSON object')
    end
    for k, v in pairs(a) do
        if v == NULL then
            a[k] = nil -- null means "default", as in SQL
        end
    end
    return a
end

-- valid_id, valid_dim and valid_qty are the rules of docs/semantics.md as tests; check_id, quantities and
-- fast_report share them.
local function valid_id(v)
    return type(v) == 'string' and #v >= 1 and #v <= 128 and not v:find('[^!-z|~]')
end

local function valid_dim(k)
    return type(k) == 'string' and #k >= 1 and #k <= 64 and not k:find('[^%w_%.:%-]')
end

local function is_int(v)
    return type(v) == 'number' and v == math.floor(v) and v > -1e300 and v < 1e300
end

local function valid_qty(v)
    return is_int(v) and v >= 0 and v <= MAX
end

local function check_id(arg, v)
    if v == nil then
        invalid(arg, 'is required')
    end
    if not valid_id(v) then
        invalid(arg, 'must be 1..128 bytes of printable ASCII (0x21-0x7E) other than { and }')
    end
end

-- base_key checks the id named arg and that the call's key is prefix .. '{' .. id .. '}'.
local function base_key(keys, arg, prefix, id)
    check_id(arg, id)
    local want = prefix .. '{' .. id .. '}'
    if keys[1] ~= want then
        invalid(arg, 'the key must be ' .. want)
    end
    return want
end

local function budget_key(keys, id)
    return base_key(keys, 'budget_id', 'sc:', id)
end

local function quantities(arg, obj, required)
    if type(obj) ~= 'table' then
        invalid(arg, 'must be a JSON object of dimension -> quantity')
    end
    local out, n = {}, 0
    for k, v in pairs(obj) do
        n = n + 1
        if n > 32 then
            invalid(arg, 'at most 32 dimensions')
        end
        if type(k) ~= 'string' then
            invalid(arg, 'must be a JSON object of dimension -> quantity')
        end
        if not valid_dim(k) then
            invalid(arg, 'dimension name ' .. cjson.encode(k) .. ' must be 1..64 bytes of [A-Za-z0-9_.:-]')
        end
        if not valid_qty(v) then
            invalid(arg, cjson.encode(k) .. ' must be an integer 0..9007199254740991')
        end
        out[k] = v + 0
    end
    if required and n == 0 then
        invalid(arg, 'must have at least one dimension')
    end
    return out
end

local function parse_period(p)
    local bad = 'must be "<n> <unit>" with n in 1..10000 and unit one of second, minute, hour, day, week, month, year'
    if type(p) ~= 'string' then
        invalid('reset_every', bad)
    end
    local num, unit = p:lower():match('^%s*(%d%d?%d?%d?%d?)%s+(%a+)%s*$')
    if unit and not UNIT_MS[unit] and not CALENDAR[unit] and unit:sub(-1) == 's' then
        unit = unit:sub(1, -2)
    end
    local n = tonumber(num)
    if not unit or (not UNIT_MS[unit] and not CALENDAR[unit]) or n < 1 or n > 10000 then
        invalid('reset_every', bad)
    end
    return n, unit, n .. ' ' .. unit .. (n == 1 and '' or 's')
end

-- zone returns the zone's offset data: nil for UTC, a number of seconds for a fixed offset, or the
-- offset table of an IANA zone (which the caller provides, docs/semantics.md).
local function zone(tz, offsets)
    if type(tz) ~= 'string' then
        invalid('reset_timezone', 'must be a string')
    end
    if tz == 'UTC' then
        return nil
    end
    local sign, hh, mm = tz:match('^([+-])(%d%d):([0-5]%d)$')
    if sign then
        local minutes = tonumber(hh) * 60 + tonumber(mm)
        if minutes > 14 * 60 then
            invalid('reset_timezone', 'a fixed offset must be within -14:00..+14:00')
        end
        return (sign == '-' and -1 or 1) * minutes * 60
    end
    if #tz > 64 or not tz:find('^[%w_][%w_%+%-/]*$') then
        invalid('reset_timezone', cjson.encode(tz) .. ' is not UTC, a fixed offset +HH:MM/-HH:MM, or an IANA time zone')
    end
    if type(offsets) ~= 'table' or #offsets == 0 or #offsets > 5000 then
        invalid('reset_timezone', cjson.encode(tz) .. ' needs tz_offsets: an array of [from_ms, offset_seconds] pairs')
    end
    local prev
    for i = 1, #offsets do
        local p = offsets[i]
        if type(p) ~= 'table' or #p ~= 2 or not is_int(p[1]) or not is_int(p[2]) or math.abs(p[2]) > 86400
           or (prev and p[1] <= prev) then
            invalid('tz_offsets', 'must be [from_ms, offset_seconds] pairs of integers in ascending from_ms')
        end
        prev = p[1]
    end
    return offsets
end

----------------------------------------------------------------------------------------------
-- Time: wall clocks, calendar arithmetic from the anchor, windows (docs/semantics.md).

-- offset_at is the offset in force at instant t: the last pair starting at or before t, the
-- first pair before them all.
local function offset_at(p, t)
    if t < p[1][1] then
        return p[1][2]
    end
    local lo, hi = 1, #p
    while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        if p[mid][1] <= t then lo = mid else hi = mid - 1 end
    end
    return p[lo][2]
end

-- offset_of_local is the offset that turns wall-clock time l into an instant: that of the last
-- period whose wall clock starts at or before l. In a DST gap that is the period before the
-- change (the offset in force before it); in an overlap, the period after it — PostgreSQL's rule.
local function offset_of_local(p, l)
    local lo, hi = 1, #p
    while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        if p[mid][1] + p[mid][2] * 1000 <= l then lo = mid else hi = mid - 1 end
    end
    return p[lo][2]
end

local function to_local(z, t)
    if z == nil then return t end
    if type(z) == 'number' then return t + z * 1000 end
    return t + offset_at(z, t) * 1000
end

local function from_local(z, l)
    if z == nil then return l end
    if type(z) == 'number' then return l - z * 1000 end
    return l - offset_of_local(z, l) * 1000
end

-- Civil dates (proleptic Gregorian) from days since 1970-01-01 and back.
local function civil_from_days(z)
    z = z + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400
    if m <= 2 then y = y + 1 end
    return y, m, d
end

local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = m > 2 and m - 3 or m + 9
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in_month(y, m)
    if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then
        return 29
    end
    return MONTH_DAYS[m]
end

-- add_months adds months to wall-clock time l, clamping the day to the month's end (PostgreSQL's
-- timestamp + interval).
local function add_months(l, months)
    local days = math.floor(l / DAY)
    local tod = l - days * DAY
    local y, m, d = civil_from_days(days)
    local mi = y * 12 + (m - 1) + months
    local ny = math.floor(mi / 12)
    local nm = mi - ny * 12 + 1
    return days_from_civil(ny, nm, math.min(d, days_in_month(ny, nm))) * DAY + tod
end

local function trunc(l, unit)
    if UNIT_MS[unit] then
        return math.floor(l / UNIT_MS[unit]) * UNIT_MS[unit]
    end
    local days = math.floor(l / DAY)
    if unit == 'day' then
        return days * DAY
    elseif unit == 'week' then
        return (days - (days + 3) % 7) * DAY -- 1970-01-01 was a Thursday; weeks start on Monday
    end
    local y, m = civil_from_days(days)
    if unit == 'month' then
        return days_from_civil(y, m, 1) * DAY
    end
    return days_from_civil(y, 1, 1) * DAY
end

local function default_anchor(t, unit, z)
    local l = to_local(z, t)
    if UNIT_MS[unit] then
        return t - (l - trunc(l, unit))
    end
    return from_local(z, trunc(l, unit))
end

local function boundary(anchor, n, unit, z, k)
    if UNIT_MS[unit] then
        return anchor + k * n * UNIT_MS[unit]
    end
    local la = to_local(z, anchor)
    if unit == 'day' then
        return from_local(z, la + k * n * DAY)
    elseif unit == 'week' then
        return from_local(z, la + k * n * 7 * DAY)
    elseif unit == 'month' then
        return from_local(z, add_months(la, k * n))
    end
    return from_local(z, add_months(la, 12 * k * n))
end

-- window_of returns k, window_start, next_reset_at of the window containing t.
local function window_of(anchor, n, unit, z, created, t)
    if t < anchor then
        return -1, created, anchor
    end
    local k
    if UNIT_MS[unit] then
        k = math.floor((t - anchor) / (n * UNIT_MS[unit]))
    else
        local la, lt = to_local(z, anchor), to_local(z, t)
        local da, dt = math.floor(la / DAY), math.floor(lt / DAY)
        if unit == 'day' then
            k = math.floor((dt - da) / n)
        elseif unit == 'week' then
            k = math.floor((dt - da) / (7 * n))
        else
            local ya, ma = civil_from_days(da)
            local yt, mt = civil_from_days(dt)
            if unit == 'month' then
                k = math.floor(((yt - ya) * 12 + mt - ma) / n)
            else
                k = math.floor((yt - ya) / n)
            end
        end
        k = math.max(k, 0)
    end
    while boundary(anchor, n, unit, z, k + 1) <= t do
        k = k + 1
    end
    while k > 0 and boundary(anchor, n, unit, z, k) > t do
        k = k - 1
    end
    return k, boundary(anchor, n, unit, z, k), boundary(anchor, n, unit, z, k + 1)
end

----------------------------------------------------------------------------------------------
-- Quantity objects.

local function plus(a, b)
    local out = {}
    for k, v in pairs(a) do out[k] = v end
    for k, v in pairs(b) do out[k] = (out[k] or 0) + v end
    for k, v in pairs(out) do
        if v == 0 then out[k] = nil end
    end
    return out
end

local function minus(a, b)
    local out = {}
    for k, v in pairs(a) do
        local r = v - (b[k] or 0)
        if r > 0 then out[k] = r end
    end
    return out
end

local function nonzero(a)
    local out = {}
    for k, v in pairs(a) do
        if v ~= 0 then out[k] = v end
    end
    return out
end

local function same_quantities(a, b)
    for k, v in pairs(a) do
        if b[k] ~= v then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

----------------------------------------------------------------------------------------------
-- Budget state.

local function zone_of(b)
    if b.tz == 'UTC' then
        return nil
    end
    if b.tz:sub(1, 1) == '+' or b.tz:sub(1, 1) == '-' then
        return zone(b.tz)
    end
    if b._zone == nil then
        b._zone = cjson.decode(redis.call('GET', b._key .. ':tz'))
    end
    return b._zone
end

-- advance rolls b in memory to the window containing t (docs/semantics.md: one roll for any number of
-- missed periods) and returns the window it closed, or nil when t is still in b's window.
local function advance(b, t)
    if b.nr == nil or t < b.nr then
        return nil
    end
    local closed = { seq = b.seq, ws = b.ws, we = b.nr, usage = b.usage, wbc = b.wbc, wsbc = b.wsbc }
    b.k, b.ws, b.nr = window_of(b.anchor, b.n, b.unit, zone_of(b), b.created, t)
    -- Only a window with usage or breaches counts, as in PostgreSQL, where the roll job closes the
    -- empty windows of idle budgets every period.
    if next(b.usage) ~= nil or b.wbc > 0 or b.wsbc > 0 then
        b.seq = b.seq + 1
    end
    b.usage = {}
    b.wbc, b.wsbc = 0, 0
    b.lba, b.lbd = nil, nil
    return closed
end

local function history_row(w, closed_by)
    return { window_seq = w.seq, window_start = w.ws, window_end = w.we, usage = w.usage,
             breach_count = w.wbc, soft_breach_count = w.wsbc, closed_by = closed_by }
end

local function has_activity(w)
    return next(w.usage) ~= nil or w.wbc > 0 or w.wsbc > 0
end

local function queue(b, ...)
    b._writes[#b._writes + 1] = { ... }
end

-- close_window queues the history row of a closed window unless it had no usage and no breaches,
-- and forgets the spend ledger, which only ever holds the current window's amounts.
local function close_window(b, w, closed_by)
    if has_activity(w) then
        queue(b, 'LPUSH', b._key .. ':h', encode(history_row(w, closed_by)))
        queue(b, 'LTRIM', b._key .. ':h', 0, HISTORY_KEPT - 1)
    end
    queue(b, 'DEL', b._key .. ':l')
end

-- live_reserved sums the reservations still live at t. The aggregate kept on the budget is exact
-- until its earliest expiry; after it, the hash is read. drop: queue the removal of expired ones.
local function live_reserved(b, t, drop)
    if b.rexp == nil or t < b.rexp then
        return b.reserved, b.rexp
    end
    local all = redis.call('HGETALL', b._key .. ':r')
    local sum, min_exp = {}, nil
    for i = 1, #all, 2 do
        local r = cjson.decode(all[i + 1])
        if r.exp <= t then
            if drop then queue(b, 'HDEL', b._key .. ':r', all[i]) end
        else
            sum = plus(sum, r.a)
            if min_exp == nil or r.exp < min_exp then min_exp = r.exp end
        end
    end
    return nonzero(sum), min_exp
end

-- decode_budget reads a stored budget document; absent fields are nil.
local function decode_budget(raw)
    if raw:byte(1) ~= 123 then -- '{': JSON, as versions before MessagePack stored it
        return cmsgpack.unpack(raw)
    end
    local b = cjson.decode(raw)
    for f, v in pairs(b) do
        if v == NULL then b[f] = nil end
    end
    return b
end

local function read_budget(key, id)
    local raw = redis.call('GET', key)
    if not raw then
        fail('SC001', 'budget_id: budget ' .. cjson.encode(id) .. ' not found')
    end
    local b = decode_budget(raw)
    b._key = key
    b._writes = {}
    return b
end

local function instant(b, at)
    return math.max(at, b.ws)
end

-- lock_budget is the prologue of every writer: the budget brought to the call's instant, its due
-- window closed and rolled, its expired reservations dropped; the writes are queued.
local function lock_budget(key, id, at)
    local b = read_budget(key, id)
    local t = instant(b, at)
    local closed = advance(b, t)
    if closed then
        close_window(b, closed, 'schedule')
        b._rolled = true
    end
    b.reserved, b.rexp = live_reserved(b, t, true)
    return b, t
end

-- encode_budget packs the stored fields of b, and not what a call keeps on it (_key, _writes,
-- _zone, _rolled). This constructor is the list of stored fields; being one table constructor, it
-- costs a single allocation (filling an empty table field by field took 3 µs). MessagePack keeps
-- integers exact up to 2^63, so quantities up to MAX_QTY round-trip.
local function encode_budget(b)
    return cmsgpack.pack({
        id = b.id, hard = b.hard, soft = b.soft, every = b.every, n = b.n, unit = b.unit, tz = b.tz,
        anchor = b.anchor, mode = b.mode, scope_type = b.scope_type, scope_id = b.scope_id, ttl = b.ttl,
        created = b.created, updated = b.updated, seq = b.seq, k = b.k, ws = b.ws, nr = b.nr,
        usage = b.usage, reserved = b.reserved, rexp = b.rexp, bc = b.bc, sbc = b.sbc, wbc = b.wbc,
        wsbc = b.wsbc, lba = b.lba, lbd = b.lbd, gen = b.gen,
    })
end

local function commit(b)
    redis.call('SET', b._key, encode_budget(b))
    for _, w in ipairs(b._writes) do
        redis.call(unpack(w))
    end
end

local function opt(v)
    if v == nil then return NULL end
    return v
end

local function status_row(b, t)
    local reserved = live_reserved(b, t, false)
    local remaining = {}
    for d, h in pairs(b.hard) do
        remaining[d] = math.max(0, h - (b.usage[d] or 0) - (reserved[d] or 0))
    end
    return {
        budget_id = b.id, hard_limits = b.hard, soft_limits = b.soft, reset_every = opt(b.every),
        reset_timezone = b.tz, reset_anchor = opt(b.anchor), mode = b.mode, scope_type = opt(b.scope_type),
        scope_id = opt(b.scope_id), dedup_ttl_seconds = b.ttl, window_seq = b.seq, window_start = b.ws,
        next_reset_at = opt(b.nr), usage = b.usage, reserved = reserved, remaining = remaining,
        breach_count = b.bc, soft_breach_count = b.sbc, window_breach_count = b.wbc,
        window_soft_breach_count = b.wsbc, last_breach_at = opt(b.lba), last_breach_dim = opt(b.lbd),
        created_at = b.created, updated_at = b.updated,
    }
end

local function at_of(a)
    local at = a.at_ms
    if at == nil then
        return now_ms()
    end
    if not is_int(at) then
        invalid('at_ms', 'must be an integer of Unix milliseconds')
    end
    return at
end

----------------------------------------------------------------------------------------------
-- Admission (docs/semantics.md).

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
        dkey = key .. ':d:' .. b.gen .. ':' .. dk
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
        local raw = redis.call('HGET', key .. ':r', ref)
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
            queue(b, 'HSET', key .. ':r', ref, encode({ a = d, exp = o.expires_at }))
            b.reserved = plus(b.reserved, d)
            if b.rexp == nil or o.expires_at < b.rexp then b.rexp = o.expires_at end
        else
            b.usage = plus(b.usage, d)
            if op == 'record_spend' then
                -- After a roll the ledger's old entries are being deleted: start afresh.
                local prev = not b._rolled and redis.call('HGET', key .. ':l', ref) or nil
                queue(b, 'HSET', key .. ':l', ref, encode(plus(prev and cjson.decode(prev) or {}, d)))
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

----------------------------------------------------------------------------------------------
-- The API (docs/semantics.md).

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
    if anchor_arg ~= nil and not is_int(anchor_arg) then
        invalid('reset_anchor', 'must be an integer of Unix milliseconds')
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
        queue(b, 'SET', key .. ':tz', encode(array(z)))
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
    redis.call('DEL', key, key .. ':tz', key .. ':r', key .. ':l', key .. ':h')
    return { deleted = existed }
end

-- fast_report answers, as PostgreSQL's report_usage does on its fast path, the common call: no
-- dedup key, valid input, no roll due, no expired reservation, and every new total within all
-- limits, so the outcome is 'ok'. It returns nil for anything else before it writes, and the
-- general path (admit) decides and raises the errors. It skips the general path's generic
-- machinery: about a third of a report's time on the server.
local function fast_report(keys, a)
    local id, d, dk = a.budget_id, a.deltas, a.dedup_key
    if (dk ~= nil and dk ~= '') or not valid_id(id) or type(d) ~= 'table' or keys[1] ~= 'sc:{' .. id .. '}' then
        return nil
    end
    local at = a.at_ms
    if at == nil then
        at = now_ms()
    elseif not is_int(at) then
        return nil
    end
    local raw = redis.call('GET', keys[1])
    if not raw then
        return nil
    end
    -- Changed in place only after each check, and dropped whenever the call leaves the fast path.
    local b = decode_budget(raw)
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
        local room = math.min(MAX, b.hard[dim] or MAX, b.soft[dim] or MAX)
        if n > 32 or new + (b.reserved[dim] or 0) > room then
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
    redis.call('SET', keys[1], encode_budget(b))
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
    local raw = not b._rolled and redis.call('HGET', key .. ':l', a.execution_id) or nil
    if raw then
        for dim, v in pairs(cjson.decode(raw)) do
            local r = math.min(v, b.usage[dim] or 0)
            if r > 0 then released[dim] = r end
        end
    end
    queue(b, 'HDEL', key .. ':l', a.execution_id)
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
    local raw = redis.call('HGET', key .. ':r', rid)
    local r = raw and cjson.decode(raw)
    if not r or r.exp <= t then
        fail('SC007', 'reservation_id: reservation ' .. cjson.encode(rid) .. ' is unknown, expired or already finished')
    end
    queue(b, 'HDEL', key .. ':r', rid)
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
        for _, raw in ipairs(redis.call('LRANGE', key .. ':h', 0, max_rows - 1)) do
            rows[#rows + 1] = cjson.decode(raw)
        end
    end
    return rows
end

----------------------------------------------------------------------------------------------
-- Quota policies (docs/semantics.md). Keys, under the hash tag {<policy_id>}:
--   sc:q:{id}     the definition (JSON)
--   sc:q:{id}:w   window entries (ZSET, score = admission time in ms), trimmed on every acquire
--   sc:q:{id}:l   leases (ZSET holder -> expiry in ms)
--   sc:q:{id}:n   the counter naming window entries

local function policy_key(keys, id)
    return base_key(keys, 'policy_id', 'sc:q:', id)
end

local function read_policy(key, id)
    local raw = redis.call('GET', key)
    if not raw then
        fail('SC006', 'policy_id: policy ' .. cjson.encode(id) .. ' not found')
    end
    return cjson.decode(raw)
end

local function bounded(arg, v, min, max)
    if not is_int(v) or v < min or v > max then
        invalid(arg, 'must be ' .. min .. '..' .. max)
    end
    return v
end

function api.create_quota_policy(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local w = bounded('window_seconds', a.window_seconds or 0, 0, 2592000)
    local mr = bounded('max_requests', a.max_requests or 0, 0, 1000000)
    if mr > 0 and w == 0 then
        invalid('window_seconds', 'must be above 0 when max_requests is set')
    end
    local mc = bounded('max_concurrent', a.max_concurrent or 0, 0, 1000000)
    local ls = bounded('lease_seconds', a.lease_seconds or 60, 1, 86400)
    local at = at_of(a)
    local raw = redis.call('GET', key)
    if raw then
        local p = cjson.decode(raw)
        if p.w ~= w or p.mr ~= mr or p.mc ~= mc or p.ls ~= ls then
            fail('SC005', 'policy_id: policy ' .. cjson.encode(id) .. ' exists with a different definition')
        end
        return { policy_id = id, created = false }
    end
    redis.call('SET', key, encode({ w = w, mr = mr, mc = mc, ls = ls, created = at }))
    return { policy_id = id, created = true }
end

local function first_score(key)
    local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tonumber(r[2])
end

function api.acquire_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a)
    local p = read_policy(key, id)
    if p.w > 0 then
        redis.call('ZREMRANGEBYSCORE', key .. ':w', '-inf', t - p.w * 1000)
    end
    redis.call('ZREMRANGEBYSCORE', key .. ':l', '-inf', t)
    local r = { admitted = true, reason = 'ok', retry_after_ms = 0,
                in_window = redis.call('ZCARD', key .. ':w'), active = redis.call('ZCARD', key .. ':l') }
    if redis.call('ZSCORE', key .. ':l', a.holder_id) then
        r.reason = 'already_held'
        return r
    end
    if p.mr > 0 and r.in_window >= p.mr then
        r.admitted, r.reason = false, 'rate_limited'
        r.retry_after_ms = first_score(key .. ':w') + p.w * 1000 - t
        return r
    end
    if p.mc > 0 and r.active >= p.mc then
        r.admitted, r.reason = false, 'concurrency_limited'
        r.retry_after_ms = first_score(key .. ':l') - t
        return r
    end
    if p.w > 0 then
        redis.call('ZADD', key .. ':w', t, redis.call('INCR', key .. ':n'))
        r.in_window = r.in_window + 1
    end
    redis.call('ZADD', key .. ':l', t + p.ls * 1000, a.holder_id)
    r.active = r.active + 1
    return r
end

function api.renew_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a)
    local p = read_policy(key, id)
    local expiry = tonumber(redis.call('ZSCORE', key .. ':l', a.holder_id) or nil)
    if not expiry or expiry <= t then
        invalid('holder_id', cjson.encode(a.holder_id) .. ' holds no live lease')
    end
    redis.call('ZADD', key .. ':l', t + p.ls * 1000, a.holder_id)
    return { expires_at = t + p.ls * 1000 }
end

function api.release_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a)
    read_policy(key, id)
    local expiry = tonumber(redis.call('ZSCORE', key .. ':l', a.holder_id) or nil)
    redis.call('ZREM', key .. ':l', a.holder_id)
    return { released = expiry ~= nil and expiry > t }
end

function api.quota_status(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local t = at_of(a)
    local p = read_policy(key, id)
    local in_window = 0
    if p.w > 0 then
        in_window = redis.call('ZCOUNT', key .. ':w', '(' .. encode(t - p.w * 1000), '+inf')
    end
    local holders = redis.call('ZRANGEBYSCORE', key .. ':l', '(' .. encode(t), '+inf')
    table.sort(holders)
    return { policy_id = id, window_seconds = p.w, max_requests = p.mr, max_concurrent = p.mc, lease_seconds = p.ls,
             in_window = in_window, active = #holders, holders = array(holders) }
end

function api.delete_quota_policy(keys, a)
    local key = policy_key(keys, a.policy_id)
    local existed = redis.call('EXISTS', key) == 1
    redis.call('DEL', key, key .. ':w', key .. ':l', key .. ':n')
    return { deleted = existed }
end

----------------------------------------------------------------------------------------------
-- Registration: every call answers one JSON document, or an error reply carrying its error code.

-- run calls fn and encodes its answer; a string is an answer already encoded (fast_report): no API
-- call answers a bare string.
local function run(fn, keys, argv)
    local r = fn(keys, decode_args(argv))
    if type(r) == 'string' then
        return r
    end
    return encode(r)
end

local function register(name, fn, readonly)
    redis.register_function({
        function_name = 'sc_' .. name,
        callback = function(keys, argv)
            NULL = cjson.null
            local ok, res = pcall(run, fn, keys, argv)
            if ok then
                return res
            end
            if type(res) == 'table' and res.sc then
                return redis.error_reply(res.sc)
            end
            error(res, 0)
        end,
        flags = readonly and { 'no-writes' } or {},
    })
end

register('create_budget', api.create_budget)
register('set_limits', api.set_limits)
register('delete_budget', api.delete_budget)
register('report_usage', api.report_usage)
register('check_usage', api.check_usage, true)
register('record_spend', api.record_spend)
register('release_spend', api.release_spend)
register('reserve', api.reserve)
register('settle', api.settle)
register('cancel_reservation', api.cancel_reservation)
register('reset_budget', api.reset_budget)
register('budget_status', api.budget_status, true)
register('budget_history', api.budget_history, true)
register('create_quota_policy', api.create_quota_policy)
register('acquire_quota', api.acquire_quota)
register('renew_quota', api.renew_quota)
register('release_quota', api.release_quota)
register('quota_status', api.quota_status, true)
register('delete_quota_policy', api.delete_quota_policy)
