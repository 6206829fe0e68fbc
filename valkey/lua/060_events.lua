----------------------------------------------------------------------------------------------
-- Threshold events (docs/semantics.md#events; SQL: 060_events.sql): written by the call that
-- causes them, in its FCALL, at most once per (budget, window, kind, dimension, percent).

-- alert_percents_of checks an alert_percents argument: nil or an empty array means none (nil);
-- else 1..10 integers 1..1000, ascending. SC002 naming arg otherwise.
local function alert_percents_of(arg, ps)
    if ps == nil or (type(ps) == 'table' and next(ps) == nil) then
        return nil
    end
    if type(ps) ~= 'table' or #ps > 10 then
        invalid_argument(arg, 'must be at most 10 ascending integers 1..1000')
    end
    local n = 0
    for _ in pairs(ps) do n = n + 1 end
    for i = 1, #ps do
        local p = ps[i]
        if not is_int(p) or p < 1 or p > 1000 or (i > 1 and p <= ps[i - 1]) then
            invalid_argument(arg, 'must be at most 10 ascending integers 1..1000')
        end
    end
    if n ~= #ps then
        invalid_argument(arg, 'must be at most 10 ascending integers 1..1000')
    end
    return array(ps)
end

-- reached is the whole percent of hard limit h that usage u has reached, at most 1001 (past every
-- alert percent): percent p is reached, usage >= ceil(p × h / 100), exactly when p <= reached(u,
-- h). nil without a limit; an alert needs h > 0.
local function reached(u, h)
    if h == nil or h <= 0 then
        return nil
    end
    return math.min(math.floor(100 * (u or 0) / h), 1001)
end

-- crosses says whether usage going from before to after in one dimension with hard limit h
-- reaches one of the percents ps: the fast path's test, which sends a call that raises a
-- threshold event to the general path (alert).
local function crosses(before, after, h, ps)
    local lo, hi = reached(before, h), reached(after, h)
    if ps == nil or lo == nil then
        return false
    end
    for i = 1, #ps do
        if ps[i] > lo and ps[i] <= hi then
            return true
        end
    end
    return false
end

-- events_key is the stream of the slot group of base key base: sc:{g}:events.
local function events_key(base)
    return base:sub(1, base:find('}', 1, true)) .. ':events'
end

-- emit queues one event of budget b (its current window) for save, unless that (window, kind,
-- dimension, percent) has had its event (b.fired, cleared when the window changes: advanced and
-- reset_budget). closed: the window that closes, for window_closed. event_id is
-- the slot group's counter; the stream entry's id is <event_id>-1.
function emit(b, kind, dim, percent, usage, limit, t, closed)
    -- A window closes once: only the events of the current window need the marks.
    if not closed then
        local mark = kind .. ' ' .. (dim or '') .. ' ' .. (percent or '')
        b.fired = b.fired or {}
        if b.fired[mark] then
            return
        end
        b.fired[mark] = true
    end
    local e = { budget_id = b.budget_id, kind = kind, window_seq = b.window_seq, window_start = b.window_start, dimension = dim,
                percent = percent, usage = usage, limit_value = limit, occurred_at = t }
    if closed then
        e.window_seq, e.window_start, e.window_usage = closed.window_seq, closed.window_start, closed.usage
        e.breach_count, e.soft_breach_count, e.closed_by = closed.breach_count, closed.soft_breach_count, closed.closed_by
    end
    local stream = events_key(b._key)
    b._writes[#b._writes + 1] = function()
        local id = redis.call('INCR', stream .. ':id')
        e.event_id = id
        redis.call('XADD', stream, id .. '-1', 'e', encode(e))
        if id == 1 then
            -- A new stream: readers that find streams by SCAN learn of it now rather than at their
            -- next scan (fire and forget: the scan still finds it for whoever did not listen).
            redis.call('PUBLISH', STREAMS_CHANNEL, stream)
        end
    end
end

-- alert queues the events of one admission on one budget b: before is its usage as brought,
-- b.usage as it will be committed, o the budget's outcome, t the call's instant. A threshold
-- event for each percent of each hard-limited dimension (in byte order) that usage reaches,
-- ascending; then hard_breach when o is the window's first hard breach (wbc_before 0).
function alert(b, before, o, t, wbc_before)
    if b.alert_percents ~= nil then
        for _, dim in ipairs(sorted_keys(b.hard_limits)) do
            local lo, hi = reached(before[dim], b.hard_limits[dim]), reached(b.usage[dim], b.hard_limits[dim])
            if lo ~= nil then
                for _, p in ipairs(b.alert_percents) do
                    if p > lo and p <= hi then
                        emit(b, 'threshold', dim, p, b.usage[dim] or 0, b.hard_limits[dim], t)
                    end
                end
            end
        end
    end
    if o.outcome == 'hard_breach' and wbc_before == 0 then
        emit(b, 'hard_breach', o.dimension, nil, o.usage, o.limit_value, t)
    end
end

-- stream_of is the one key of a call on a slot group's event stream.
local function stream_of(keys)
    local stream = keys[1]
    if type(stream) ~= 'string' or not stream:find('^sc:{[^}]+}:events$') then
        invalid_argument('keys', 'must be one events stream key, sc:{<group>}:events')
    end
    return stream
end

-- events_since answers the events of the slot group whose stream is keys[1] (sc:{g}:events)
-- after after_id, in id order, at most max_rows (1..10000).
function api.events_since(keys, a)
    local stream = stream_of(keys)
    local after = a.after_id or 0
    if not is_int(after) or after < 0 then
        invalid_argument('after_id', 'must be 0 or an event_id')
    end
    local max = bounded('max_rows', a.max_rows or 1000, 1, 10000)
    -- The entries hold each event's JSON already: joined, not decoded and encoded again.
    local out = {}
    for i, entry in ipairs(redis.call('XRANGE', stream, string.format('%.0f', after + 1) .. '-0', '+', 'COUNT', max)) do
        out[i] = entry[2][2]
    end
    return '[' .. table.concat(out, ',') .. ']'
end

-- EVENT_KINDS are the kinds an event has.
local EVENT_KINDS = { threshold = true, hard_breach = true, window_closed = true }

-- recent_events answers the events of the slot group whose stream is keys[1] before before_id
-- (nil: the newest), newest first, of budget budget_id and of kind kind when they are given: at
-- most max_rows (1..1000), examining at most scan entries (1..10000, 1000 by default) so that a
-- selective filter never holds the server long. The answer is JSON: {"events": [...], "next": N,
-- "done": B}; unless done, the caller asks again with before_id N for the rest.
function api.recent_events(keys, a)
    local stream = stream_of(keys)
    local budget_id, kind, before = a.budget_id, a.kind, a.before_id
    if budget_id == NULL then budget_id = nil end
    if budget_id ~= nil then check_id('budget_id', budget_id) end
    if kind == NULL then kind = nil end
    if kind ~= nil and not EVENT_KINDS[kind] then
        invalid_argument('kind', 'must be threshold, hard_breach or window_closed')
    end
    if before == NULL then before = nil end
    if before ~= nil and (not is_int(before) or before < 1) then
        invalid_argument('before_id', 'must be an event_id')
    end
    local max = bounded('max_rows', a.max_rows or 50, 1, 1000)
    local scan = bounded('scan', a.scan or 1000, 1, 10000)
    local stop = before and ('(' .. string.format('%.0f', before) .. '-0') or '+'
    local out, examined, next = {}, 0, before or 0
    while #out < max and examined < scan do
        local chunk = redis.call('XREVRANGE', stream, stop, '-', 'COUNT', math.min(100, scan - examined))
        if #chunk == 0 then
            return '{"events":[' .. table.concat(out, ',') .. '],"next":' .. string.format('%.0f', next) .. ',"done":true}'
        end
        for _, entry in ipairs(chunk) do
            examined = examined + 1
            local id = tonumber(entry[1]:match('^(%d+)'))
            next, stop = id, '(' .. entry[1]
            local raw = entry[2][2]
            local keep = budget_id == nil and kind == nil
            if not keep then
                local e = cjson.decode(raw)
                keep = (budget_id == nil or e.budget_id == budget_id) and (kind == nil or e.kind == kind)
            end
            if keep then
                out[#out + 1] = raw
                if #out == max then
                    break
                end
            end
        end
    end
    return '{"events":[' .. table.concat(out, ',') .. '],"next":' .. string.format('%.0f', next) .. ',"done":false}'
end
