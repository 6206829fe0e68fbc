----------------------------------------------------------------------------------------------
-- The storage encoding of a budget (Lua only: in PostgreSQL the table definitions of
-- sql/migrations play this part): the fields of its HASH, the MessagePack document, the formats
-- earlier versions wrote, and the reads and writes that turn one into the other.

-- from_doc is the budget in memory, its fields named as the columns of spendcap.budgets, that the
-- stored document d holds under its short names (kept for the budgets already stored; stored_fields
-- writes them). The instants, the parent, the alert percents and the per-dimension maps are fields
-- of the HASH of their own, which read_stored sets; a document of an earlier version held them
-- too. One table constructor, as in stored_fields: a loop over a table of names, which built the
-- budget field by field, cost budget_status 8% of its time and a 20-item batch on a chain 12%.
local function from_doc(d)
    return {
        budget_id = d.id, reset_every = d.every, reset_n = d.n, reset_unit = d.unit, reset_timezone = d.tz,
        reset_anchor = d.anchor, mode = d.mode, scope_type = d.scope_type, scope_id = d.scope_id,
        dedup_ttl_seconds = d.ttl, created_at = d.created, window_seq = d.seq, window_k = d.k,
        breach_count = d.bc, soft_breach_count = d.sbc, window_breach_count = d.wbc,
        window_soft_breach_count = d.wsbc, last_breach_at = d.lba, last_breach_dim = d.lbd, gen = d.gen,
        child_count = d.nc, fired = d.fired,
        usage = d.usage, reserved = d.reserved, hard_limits = d.hard, soft_limits = d.soft,
        window_start = d.ws, updated_at = d.updated, next_reset_at = d.nr, reservations_expire_at = d.rexp,
        parent_id = d.p, alert_percents = d.ap,
    }
end

-- decode_budget reads a budget stored as one string by an earlier version (MessagePack, or JSON
-- before that); absent fields are nil.
local function decode_budget(raw)
    if raw:byte(1) ~= 123 then -- '{': JSON
        return from_doc(cmsgpack.unpack(raw))
    end
    local d = cjson.decode(raw)
    for f, v in pairs(d) do
        if v == NULL then d[f] = nil end
    end
    return from_doc(d)
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
local DIM_MAPS = { 'usage', 'reserved', 'hard_limits', 'soft_limits' }

-- DIM_OF_LETTER names the map of a field "<letter>:<dim>" by the letter's byte.
local DIM_OF_LETTER = { [117] = 'usage', [114] = 'reserved', [104] = 'hard_limits', [115] = 'soft_limits' }

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
            id = b.budget_id, every = b.reset_every, n = b.reset_n, unit = b.reset_unit, tz = b.reset_timezone,
            anchor = b.reset_anchor, mode = b.mode, scope_type = b.scope_type, scope_id = b.scope_id,
            ttl = b.dedup_ttl_seconds, created = b.created_at, seq = b.window_seq, k = b.window_k,
            bc = b.breach_count, sbc = b.soft_breach_count, wbc = b.window_breach_count,
            wsbc = b.window_soft_breach_count, lba = b.last_breach_at, lbd = b.last_breach_dim, gen = b.gen,
            nc = b.child_count, fired = b.fired,
        }),
        ws = b.window_start, upd = b.updated_at, nr = b.next_reset_at, rexp = b.reservations_expire_at,
        p = b.parent_id, ap = b.alert_percents and table.concat(b.alert_percents, ','),
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
    local f, maps = {}, { usage = {}, reserved = {}, hard_limits = {}, soft_limits = {} }
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
    local b = from_doc(cmsgpack.unpack(f.doc))
    b.usage, b.reserved, b.hard_limits, b.soft_limits = maps.usage, maps.reserved, maps.hard_limits, maps.soft_limits
    b.window_start, b.updated_at, b.next_reset_at, b.reservations_expire_at = f.ws, f.upd, f.nr, f.rexp
    b.parent_id, b.alert_percents = f.p, percents_of(f.ap)
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
