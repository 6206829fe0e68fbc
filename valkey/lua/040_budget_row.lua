----------------------------------------------------------------------------------------------
-- The budget row: reading it (locked, rolled to the call's instant), writing it, its status and history.

local function zone_of(b)
    if b.tz == 'UTC' then
        return nil
    end
    if b.tz:sub(1, 1) == '+' or b.tz:sub(1, 1) == '-' then
        return zone(b.tz)
    end
    if b._zone == nil then
        b._zone = cjson.decode(redis.call('GET', subkey(b._key, 'tz')))
    end
    return b._zone
end

-- advance rolls b in memory to the window containing t (docs/semantics.md#windows: one roll for any number of
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
    b.fired = nil
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

-- field is the hash field under which budget b holds an entry (ledger, reservation) that the
-- budget named by the call owns: ref itself on the named budget, "<named> <ref>" on the others.
local function field(b, named, ref)
    if b.id == named then
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
        if redis.call('HEXISTS', subkey(base_of('sc:', x), 'l'), field({ id = x }, b.id, ref)) == 1 then
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
        queue(b, 'LPUSH', subkey(b._key, 'h'), encode(history_row(w, closed_by)))
        queue(b, 'LTRIM', subkey(b._key, 'h'), 0, HISTORY_KEPT - 1)
        emit(b, 'window_closed', nil, nil, nil, nil, t,
             { seq = w.seq, ws = w.ws, usage = w.usage, wbc = w.wbc, wsbc = w.wsbc, by = closed_by })
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

-- live_reserved sums the reservations still live at t. The aggregate kept on the budget is exact
-- until its earliest expiry; after it, the hash is read. drop: queue the removal of expired ones.
local function live_reserved(b, t, drop)
    if b.rexp == nil or t < b.rexp then
        return b.reserved, b.rexp
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

-- decode_budget reads a budget stored as one string by an earlier version (MessagePack, or JSON
-- before that); absent fields are nil.
local function decode_budget(raw)
    if raw:byte(1) ~= 123 then -- '{': JSON
        return cmsgpack.unpack(raw)
    end
    local b = cjson.decode(raw)
    for f, v in pairs(b) do
        if v == NULL then b[f] = nil end
    end
    return b
end

-- The stored budget is a HASH at its base key. What report_usage's fast path needs are fields of
-- their own, so that a report reads them with one HMGET and writes two with one HSET instead of
-- unpacking and packing the whole budget: ws, nr, rexp and upd (window start, next reset, the
-- earliest reservation expiry, last update: integers as decimal text), p (the parent's id), ap
-- (alert percents, "50,80"), and per dimension u:<dim>, r:<dim>, h:<dim> and s:<dim> (usage,
-- reserved, hard and soft limit). The rest, which only the general path reads, is one MessagePack
-- field, doc. A budget stored as one string by an earlier version still reads, and its next write
-- stores it as a HASH.

-- DIM_MAPS are the maps of a budget kept per dimension, in the order of names_of's names.
local DIM_MAPS = { 'usage', 'reserved', 'hard', 'soft' }
-- DIM_OF_LETTER names the map of a field "<letter>:<dim>" by the letter's byte.
local DIM_OF_LETTER = { [117] = 'usage', [114] = 'reserved', [104] = 'hard', [115] = 'soft' }

-- names_of is the field names of dimension dim (u:, r:, h:, s:) that the budget's hash holds,
-- made once: a call builds no strings for them. The cache is emptied when it holds 1024
-- dimensions.
local dim_names, dim_names_n = {}, 0
local function names_of(dim)
    local n = dim_names[dim]
    if not n then
        if dim_names_n >= 1024 then
            dim_names, dim_names_n = {}, 0
        end
        n = { 'u:' .. dim, 'r:' .. dim, 'h:' .. dim, 's:' .. dim }
        dim_names[dim], dim_names_n = n, dim_names_n + 1
    end
    return n
end

-- percents_of reads the ap field: the alert percents as an array, or nil.
local function percents_of(s)
    if not s then
        return nil
    end
    local ps = array()
    for p in s:gmatch('%d+') do
        ps[#ps + 1] = tonumber(p)
    end
    return ps
end

-- TIME_FIELDS are the hash's fields of instants: numbers, as the per-dimension fields.
local TIME_FIELDS = { ws = true, upd = true, nr = true, rexp = true }

-- stored_fields is the hash of budget b, field -> value, without what a call keeps on it (_key,
-- _writes, _zone, _rolled, _moved, _stored, _legacy): numbers for the instants and the
-- per-dimension fields (store writes those that changed with decimal), text for the others. The
-- doc constructor is the list of the fields kept in doc; being one table constructor, it costs a
-- single allocation. MessagePack keeps integers exact up to 2^63, and decimal writes them
-- exactly, so quantities up to MAX_QTY round-trip.
local function stored_fields(b)
    local f = {
        doc = cmsgpack.pack({
            id = b.id, every = b.every, n = b.n, unit = b.unit, tz = b.tz, anchor = b.anchor, mode = b.mode,
            scope_type = b.scope_type, scope_id = b.scope_id, ttl = b.ttl, created = b.created, seq = b.seq,
            k = b.k, bc = b.bc, sbc = b.sbc, wbc = b.wbc, wsbc = b.wsbc, lba = b.lba, lbd = b.lbd, gen = b.gen,
            nc = b.nc, fired = b.fired,
        }),
        ws = b.ws, upd = b.updated, nr = b.nr, rexp = b.rexp, p = b.p, ap = b.ap and table.concat(b.ap, ','),
    }
    for k, name in ipairs(DIM_MAPS) do
        for dim, v in pairs(b[name]) do
            f[names_of(dim)[k]] = v
        end
    end
    return f
end

-- read_stored is the budget stored at key, or nil when there is none.
local function read_stored(key)
    local all = redis.pcall('HGETALL', key)
    if all.err then -- WRONGTYPE: a string, as earlier versions stored a budget
        local b = decode_budget(redis.call('GET', key))
        b._key, b._writes, b._legacy = key, {}, true
        return b
    end
    if #all == 0 then
        return nil
    end
    -- f is what stored_fields makes of the budget as it is stored, for store to compare with.
    local f, maps = {}, { usage = {}, reserved = {}, hard = {}, soft = {} }
    local byte, sub = string.byte, string.sub
    for i = 1, #all, 2 do
        local name, v = all[i], all[i + 1]
        local letter, colon = byte(name, 1, 2)
        local m = colon == 58 and DIM_OF_LETTER[letter] -- "<letter>:"
        if m then
            v = tonumber(v)
            maps[m][sub(name, 3)] = v
        elseif TIME_FIELDS[name] then
            v = tonumber(v)
        end
        f[name] = v
    end
    local b = cmsgpack.unpack(f.doc)
    b.usage, b.reserved, b.hard, b.soft = maps.usage, maps.reserved, maps.hard, maps.soft
    b.ws, b.updated, b.nr, b.rexp = f.ws, f.upd, f.nr, f.rexp
    b.p, b.ap = f.p, percents_of(f.ap)
    b._key, b._writes, b._stored = key, {}, f
    return b
end

-- store writes budget b: the fields that changed since it was read (every field of a budget that
-- is new or was stored as a string), and deletes the fields it no longer has.
local function store(b)
    local old = b._stored
    local f = stored_fields(b)
    if b._legacy then
        redis.call('DEL', b._key)
        b._legacy = nil
    end
    local set, del = { 'HSET', b._key }, { 'HDEL', b._key }
    for name, v in pairs(f) do
        if old == nil or old[name] ~= v then
            set[#set + 1] = name
            set[#set + 1] = type(v) == 'number' and decimal(v) or v
        end
    end
    for name in pairs(old or {}) do
        if f[name] == nil then
            del[#del + 1] = name
        end
    end
    if #set > 2 then
        redis.call(unpack(set))
    end
    if #del > 2 then
        redis.call(unpack(del))
    end
    b._stored = f
end

-- read_hot reads the fields of the budget at key that report_usage's fast path needs, for the
-- dimensions dims, with one HMGET: ws, nr, rexp, upd, p, ap, then u:, r:, h: and s: of each
-- dimension, as decimal text (false for none). nil when there is no budget there, or one an
-- earlier version stored as a string.
local function read_hot(key, dims)
    local v
    if #dims == 1 then -- most calls: no table to build and unpack
        local n = names_of(dims[1])
        v = redis.pcall('HMGET', key, 'ws', 'nr', 'rexp', 'upd', 'p', 'ap', n[1], n[2], n[3], n[4])
    else
        local get = { 'HMGET', key, 'ws', 'nr', 'rexp', 'upd', 'p', 'ap' }
        for _, dim in ipairs(dims) do
            local n, j = names_of(dim), #get
            get[j + 1], get[j + 2], get[j + 3], get[j + 4] = n[1], n[2], n[3], n[4]
        end
        v = redis.pcall(unpack(get))
    end
    if v.err or not v[1] then
        return nil
    end
    return v
end

-- load_budget is the budget stored at key, ready for bring and commit, or nil when there is none.
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
        fail('SC001', 'budget_id: budget ' .. encode(id) .. ' not found')
    end
    return b
end

local function instant(b, at)
    return math.max(at, b.ws)
end

-- bring is the prologue of every writer, for a budget just read: b brought to the call's instant
-- (which it returns), its due window closed and rolled, its expired reservations dropped; the
-- writes are queued. _moved says whether its window moved (a roll, empty or not).
local function bring(b, at)
    local t = instant(b, at)
    local ws = b.ws
    local closed = advance(b, t)
    -- Sticky: in a batch a later item must commit what an earlier, failed item's bring moved.
    b._moved = b._moved or b.ws ~= ws
    if closed then
        close_window(b, closed, 'schedule', t)
        b._rolled = true
    end
    b.reserved, b.rexp = live_reserved(b, t, true)
    return t
end

-- lock_budget reads the budget id (SC001 when there is none) and brings it to the call's instant.
local function lock_budget(key, id, at)
    local b = read_budget(key, id)
    return b, bring(b, at)
end

-- queue_store queues on b the store of budget o, another budget it changed (set_parent: the old and
-- new parents' children counts).
local function queue_store(b, o)
    b._writes[#b._writes + 1] = function() store(o) end
end

-- commit writes b and the writes queued on it. In a batch the budget is written once, when the
-- batch ends (BATCH.dirty, BATCH.order), and the queued writes now.
local function commit(b)
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
        budget_id = b.id, parent_id = opt(b.p), hard_limits = b.hard, soft_limits = b.soft, reset_every = opt(b.every),
        reset_timezone = b.tz, reset_anchor = opt(b.anchor), mode = b.mode, scope_type = opt(b.scope_type),
        scope_id = opt(b.scope_id), dedup_ttl_seconds = b.ttl, window_seq = b.seq, window_start = b.ws,
        next_reset_at = opt(b.nr), usage = b.usage, reserved = reserved, remaining = remaining,
        breach_count = b.bc, soft_breach_count = b.sbc, window_breach_count = b.wbc,
        window_soft_breach_count = b.wsbc, last_breach_at = opt(b.lba), last_breach_dim = opt(b.lbd),
        created_at = b.created, updated_at = b.updated, alert_percents = b.ap and array(b.ap) or NULL,
    }
end

-- read_chain reads parent_id's chain for create_budget and set_parent (SQL: lock_parent): the
-- parent and its ancestors, nearest first, whose base keys the caller passes as keys[first], ...
-- (docs/semantics.md#valkey). SC001 for an unknown parent; SC002 for the budget itself, a key
-- that is not the next budget of the chain, a cycle, or a chain past MAX_DEPTH with the budget.
-- It answers the parent, ready for commit().
local function read_chain(keys, first, parent_id, budget_id)
    check_id('parent_id', parent_id)
    if parent_id == budget_id then
        invalid('parent_id', 'a budget cannot be its own parent')
    end
    local parent
    local id, n = parent_id, 0
    while id ~= nil do
        if id == budget_id then
            invalid('parent_id', encode(parent_id) .. ' is a descendant of ' .. encode(budget_id)
                .. ': the chain would be a cycle')
        end
        n = n + 1
        if n + 1 > MAX_DEPTH then
            invalid('parent_id', 'a chain holds at most ' .. MAX_DEPTH .. ' budgets, the budget itself included')
        end
        local want = base_of('sc:', id)
        if keys[first + n - 1] ~= want then
            invalid('parent_id', 'key ' .. (first + n - 1) .. ' must be ' .. want .. ' (the keys name the chain of '
                .. encode(parent_id) .. ', nearest first)')
        end
        local d = read_stored(want)
        if not d then
            fail('SC001', 'parent_id: budget ' .. encode(id) .. ' not found')
        end
        if n == 1 then
            parent = d
        end
        id = d.p
    end
    return parent
end

