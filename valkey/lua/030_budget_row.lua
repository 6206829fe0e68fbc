----------------------------------------------------------------------------------------------
-- The budget row: reading it (locked, rolled to the call's instant), writing it, its status and
-- history.

-- budget_not_found raises SC001 naming the argument that held the id (budget_id by default).
local function budget_not_found(id, arg)
    fail('SC001', (arg or 'budget_id') .. ': budget ' .. encode(id) .. ' not found')
end

-- reservation_not_found raises SC007.
local function reservation_not_found(rid)
    fail('SC007', 'reservation_id: reservation ' .. encode(rid) .. ' is unknown, expired or already finished')
end

-- is_current says whether a budget with next_reset_at, reservations_expire_at and series_next_at
-- needs no bringing at instant t (SQL: is_current): t is inside its window, before its earliest
-- reservation expiry and inside its usage series' running bucket. The fast path's test; brought
-- makes the same tests in advanced and live_reserved. The audit passes a nil series_next_at: a
-- bucket to close changes no figure of the window.
local function is_current(next_reset_at, reservations_expire_at, series_next_at, t)
    return (next_reset_at == nil or t < next_reset_at)
        and (reservations_expire_at == nil or t < reservations_expire_at)
        and (series_next_at == nil or t < series_next_at)
end

-- window_row is budget b's current window as its history row will hold it once it ends at
-- window_end (closed_by is set by whoever closes it).
local function window_row(b, window_end)
    return { window_seq = b.window_seq, window_start = b.window_start, window_end = window_end, usage = b.usage,
             breach_count = b.window_breach_count, soft_breach_count = b.window_soft_breach_count }
end

local function zone_of(b)
    if b.reset_timezone == 'UTC' then
        return nil
    end
    if b.reset_timezone:sub(1, 1) == '+' or b.reset_timezone:sub(1, 1) == '-' then
        return zone(b.reset_timezone)
    end
    if b._zone == nil then
        b._zone = cjson.decode(redis.call('GET', subkey(b._key, 'tz')))
    end
    return b._zone
end

-- usage_cleared empties b's usage (a roll, a manual reset). The usage series' running bucket keeps
-- what it counted: its base drops by the usage cleared (docs/semantics.md#usage-series).
local function usage_cleared(b)
    if b.series_every then
        b.series_base = difference(b.series_base, b.usage)
    end
    b.usage = {}
end

-- bucket_usage is the usage the running bucket of b's series counted.
local function bucket_usage(b)
    return difference(b.usage, b.series_base)
end

-- series_started gives b a usage series of width every (nil: none) whose running bucket is the one
-- holding t and counts from b's usage now (create_budget, set_limits, and advanced when the running
-- bucket ended). It writes nothing: the caller closes the bucket it replaces.
local function series_started(b, every, t)
    b.series_every = every
    if every == nil then
        b.series_start, b.series_next_at, b.series_base = nil, nil, nil
        return
    end
    b.series_start, b.series_next_at = series_bucket(every, zone_of(b), t)
    local base = {}
    for d, q in pairs(b.usage) do base[d] = q end
    b.series_base = base
end

-- advanced rolls b in memory to instant t: the usage series' running bucket ended by t is
-- replaced by the one holding t, and b's window by the window containing t
-- (docs/semantics.md#windows: one roll for any number of missed periods). It returns the window it
-- closed (nil when t is still in b's window) and the bucket it closed (nil when t is still in
-- the running bucket).
local function advanced(b, t)
    local bucket
    -- The bucket first: it ends with the usage of the window it saw.
    if b.series_next_at ~= nil and t >= b.series_next_at then
        bucket = { bucket_start = b.series_start, bucket_end = b.series_next_at, usage = bucket_usage(b) }
        series_started(b, b.series_every, t)
    end
    if b.next_reset_at == nil or t < b.next_reset_at then
        return nil, bucket
    end
    local closed = window_row(b, b.next_reset_at)
    b.window_k, b.window_start, b.next_reset_at = window_of(b.reset_anchor, b.reset_n, b.reset_unit, zone_of(b), b.created_at, t)
    -- Only a window with usage or breaches counts, as in PostgreSQL, where the roll job closes the
    -- empty windows of idle budgets every period.
    if next(b.usage) ~= nil or b.window_breach_count > 0 or b.window_soft_breach_count > 0 then
        b.window_seq = b.window_seq + 1
    end
    usage_cleared(b)
    b.window_breach_count, b.window_soft_breach_count = 0, 0
    b.last_breach_at, b.last_breach_dim = nil, nil
    b.fired = nil
    return closed, bucket
end


local function has_activity(w)
    return next(w.usage) ~= nil or w.breach_count > 0 or w.soft_breach_count > 0
end

local function queue(b, ...)
    b._writes[#b._writes + 1] = { ... }
end

-- field is the hash field under which budget b holds an entry (ledger, reservation) that the
-- budget named by the call owns: ref itself on the named budget, "<named> <ref>" on the others.
local function field(b, named, ref)
    if b.budget_id == named then
        return ref
    end
    return named .. ' ' .. ref
end

-- still_recorded reports whether a budget of s (other budgets of b's set) still holds execution
-- ref, which b named, in its spend ledger: that budget has not rolled since (a roll deletes the
-- ledger), so a release, even a late one, gives the amounts back there (SQL: its ledger rows).
-- The budgets of a set share b's slot on a cluster, so their ledgers are readable here.
local function still_recorded(b, s, ref)
    for _, x in ipairs(s) do
        if redis.call('HEXISTS', subkey(base_of('sc:', x), 'l'), field({ budget_id = x }, b.budget_id, ref)) == 1 then
            return true
        end
    end
    return false
end

-- close_window queues the history row and the window_closed event of a closed window unless it
-- had no usage and no breaches,
-- and forgets the spend ledger, which only ever holds the current window's amounts. Of the set
-- index (what b named on other budgets' ledgers) it drops the entries that no other budget still
-- holds: each of those budgets has rolled past the window it was recorded in, or was deleted. An
-- entry stays while one of them has not (its window may have ended by t, but until it rolls, a
-- late release_spend finds the amounts there, as on PostgreSQL). Only entries whose windows have
-- all ended by t (u) are looked at: the others are surely held. So the index holds at most one
-- entry per execution recorded on a set and not released, until the named budget's first roll
-- after every other budget of the set rolled past it.
local function close_window(b, w, closed_by, t)
    if has_activity(w) then
        w.closed_by = closed_by
        queue(b, 'LPUSH', subkey(b._key, 'h'), encode(w))
        queue(b, 'LTRIM', subkey(b._key, 'h'), 0, HISTORY_KEPT - 1)
        emit(b, 'window_closed', nil, nil, nil, nil, t, w)
    end
    queue(b, 'DEL', subkey(b._key, 'l'))
    local index = redis.call('HGETALL', subkey(b._key, 'ls'))
    for i = 1, #index, 2 do
        local e = cjson.decode(index[i + 1])
        if e.u ~= nil and e.u ~= NULL and e.u <= t and not still_recorded(b, e.s, index[i]) then
            queue(b, 'HDEL', subkey(b._key, 'ls'), index[i])
        end
    end
end

-- close_bucket queues the append of a closed bucket of b's usage series (advanced) when it counted
-- any usage (newest first), and the removal of the buckets that started before the series'
-- retention as of t, from the oldest end: a list of at most SERIES_KEPT buckets within the
-- retention, with no job to run (SQL: close_bucket).
local function close_bucket(b, bucket, t)
    local key = subkey(b._key, 'us')
    if next(bucket.usage) ~= nil then
        queue(b, 'LPUSH', key, encode(bucket))
        queue(b, 'LTRIM', key, 0, SERIES_KEPT - 1)
    end
    local cutoff = t - series_kept(b.series_every)
    b._writes[#b._writes + 1] = function()
        for _ = 1, SERIES_KEPT do
            local oldest = redis.call('LINDEX', key, -1)
            if not oldest or cjson.decode(oldest).bucket_start >= cutoff then
                break
            end
            redis.call('RPOP', key)
        end
    end
end

-- live_reserved sums the reservations still live at t. The aggregate kept on the budget is exact
-- until its earliest expiry; after it, the hash is read. drop: queue the removal of expired ones.
local function live_reserved(b, t, drop)
    if b.reservations_expire_at == nil or t < b.reservations_expire_at then
        return b.reserved, b.reservations_expire_at
    end
    local all = redis.call('HGETALL', subkey(b._key, 'r'))
    local sum, min_exp = {}, nil
    for i = 1, #all, 2 do
        local r = cjson.decode(all[i + 1])
        if r.exp <= t then
            if drop then queue(b, 'HDEL', subkey(b._key, 'r'), all[i]) end
        else
            sum = plus(sum, r.a)
            if min_exp == nil or r.exp < min_exp then min_exp = r.exp end
        end
    end
    return nonzero(sum), min_exp
end

-- load_budget is the budget stored at key, ready for brought and save, or nil when there is none.
-- In a batch every item sees the same table, as the items before it left it.
local function load_budget(key)
    local b = BATCH and BATCH.budgets[key]
    if b then
        return b
    end
    b = read_stored(key)
    if b and BATCH then
        BATCH.budgets[key] = b
    end
    return b
end

local function read_budget(key, id)
    local b = load_budget(key)
    if not b then
        budget_not_found(id)
    end
    return b
end

local function instant_on(b, at)
    return math.max(at, b.window_start)
end

-- brought is the prologue of every writer, for a budget just read: b brought to the call's instant
-- (which it returns), its due window closed and rolled, its expired reservations dropped; the
-- writes are queued. _moved says whether its window moved (a roll, empty or not).
local function brought(b, at)
    local t = instant_on(b, at)
    local ws = b.window_start
    local closed, bucket = advanced(b, t)
    if bucket then
        close_bucket(b, bucket, t)
    end
    -- Sticky: in a batch a later item must save what an earlier, failed item's brought moved.
    b._moved = b._moved or b.window_start ~= ws
    if closed then
        close_window(b, closed, 'schedule', t)
        b._rolled = true
    end
    b.reserved, b.reservations_expire_at = live_reserved(b, t, true)
    return t
end

-- lock_budget reads the budget id (SC001 when there is none) and brings it to the call's instant.
local function lock_budget(key, id, at)
    local b = read_budget(key, id)
    return b, brought(b, at)
end

-- queue_store queues on b the store of budget o, another budget it changed (set_parent: the old and
-- new parents' children counts).
local function queue_store(b, o)
    b._writes[#b._writes + 1] = function() store(o) end
end

-- save writes b and the writes queued on it (SQL: save; store is the encoding). In a batch the
-- budget is written once, when the batch ends (BATCH.dirty, BATCH.order), and the queued writes
-- now.
local function save(b)
    if BATCH then
        if not BATCH.dirty[b._key] then
            BATCH.dirty[b._key] = true
            BATCH.order[#BATCH.order + 1] = b
        end
    else
        store(b)
    end
    if #b._writes > 0 then
        for _, w in ipairs(b._writes) do
            if type(w) == 'function' then
                w() -- an event (emit): its id is taken as it is written
            else
                redis.call(unpack(w))
            end
        end
        b._writes = {}
    end
end

-- save_all writes the budgets the batch holds and changed, each once (SQL: save_all), when it ends:
-- save queued them (BATCH.order).
local function save_all()
    for _, b in ipairs(BATCH.order) do
        store(b)
    end
end

local function opt(v)
    if v == nil then return NULL end
    return v
end

local function status_row(b, t)
    local reserved = live_reserved(b, t, false)
    local remaining = {}
    for d, h in pairs(b.hard_limits) do
        remaining[d] = math.max(0, h - (b.usage[d] or 0) - (reserved[d] or 0))
    end
    return {
        budget_id = b.budget_id, parent_id = opt(b.parent_id), hard_limits = b.hard_limits, soft_limits = b.soft_limits, reset_every = opt(b.reset_every),
        reset_timezone = b.reset_timezone, reset_anchor = opt(b.reset_anchor), mode = b.mode, scope_type = opt(b.scope_type),
        scope_id = opt(b.scope_id), dedup_ttl_seconds = b.dedup_ttl_seconds, window_seq = b.window_seq, window_start = b.window_start,
        next_reset_at = opt(b.next_reset_at), usage = b.usage, reserved = reserved, remaining = remaining,
        breach_count = b.breach_count, soft_breach_count = b.soft_breach_count, window_breach_count = b.window_breach_count,
        window_soft_breach_count = b.window_soft_breach_count, last_breach_at = opt(b.last_breach_at), last_breach_dim = opt(b.last_breach_dim),
        created_at = b.created_at, updated_at = b.updated_at, alert_percents = b.alert_percents and array(b.alert_percents) or NULL,
        usage_series = opt(b.series_every),
    }
end

-- lock_parent reads parent_id's chain for create_budget and set_parent (as SQL's lock_parent checks
-- it): the parent and its ancestors, nearest first, whose base keys the caller passes as
-- keys[first], ... (docs/semantics.md#valkey). SC001 for an unknown parent; SC002 for the budget
-- itself, a key that is not the next budget of the chain, a cycle, or a chain past MAX_DEPTH with
-- the budget. It answers the parent, ready for save().
local function lock_parent(keys, first, parent_id, budget_id)
    check_id('parent_id', parent_id)
    if parent_id == budget_id then
        invalid_argument('parent_id', 'a budget cannot be its own parent')
    end
    local parent
    local id, n = parent_id, 0
    while id ~= nil do
        if id == budget_id then
            invalid_argument('parent_id', encode(parent_id) .. ' is a descendant of ' .. encode(budget_id)
                .. ': the chain would be a cycle')
        end
        n = n + 1
        if n + 1 > MAX_DEPTH then
            invalid_argument('parent_id', 'a chain holds at most ' .. MAX_DEPTH .. ' budgets, the budget itself included')
        end
        local want = base_of('sc:', id)
        if keys[first + n - 1] ~= want then
            invalid_argument('parent_id', 'key ' .. (first + n - 1) .. ' must be ' .. want .. ' (the keys name the chain of '
                .. encode(parent_id) .. ', nearest first)')
        end
        local d = read_stored(want)
        if not d then
            budget_not_found(id, 'parent_id')
        end
        if n == 1 then
            parent = d
        end
        id = d.parent_id
    end
    return parent
end

-- refuse_children raises SC002 for a budget with children (delete_budget, set_parent; what: why).
local function refuse_children(b, what)
    if (b.child_count or 0) > 0 then
        invalid_argument('budget_id', encode(b.budget_id) .. ' has ' .. b.child_count .. ' children: ' .. what)
    end
end

-- parent_of reads the parent of b for a write of its children count: its base key is keys[i].
local function parent_of(keys, i, b)
    local want = base_of('sc:', b.parent_id)
    if keys[i] ~= want then
        invalid_argument('budget_id', 'key ' .. i .. ' must be ' .. want .. ', the parent of ' .. encode(b.budget_id))
    end
    return read_budget(want, b.parent_id)
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
