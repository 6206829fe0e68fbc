#!lua name=spendcap
--
-- spendcap budgets as a Valkey Functions library: the semantics of the PL/pgSQL functions in
-- sql/functions (described in docs/semantics.md), call for call and result for result.
--
-- Call shape (docs/semantics.md#valkey): FCALL sc_<name> 1 <base key> <json args>; the reply is one
-- JSON document; errors are replies "SC00x <argument>: <problem>". Times are integer Unix
-- milliseconds.
--
-- Keys (base_of and subkey below are their one definition). A budget's base key is sc:{id}, or
-- sc:{g}/rest for an id g/rest: the hash tag is the id up to its first '/', so budgets whose ids
-- share that segment live in one cluster slot. Every key of a budget shares its base's hash tag:
--   sc:{id}              the budget: definition, window, usage, counters (MessagePack: cmsgpack
--                        packs and unpacks it in a seventh of the time cjson plus our exact-integer
--                        JSON encoder took; documents stored as JSON by older versions still read)
--   sc:{id}:tz           its zone's offset table, for IANA zones (JSON array of [from_ms, offset_s])
--   sc:{id}:r            live reservations (HASH reservation_id -> {"a": amounts, "exp": ms}, and
--                        "s": the other budgets of its set, if any); a reservation that another
--                        budget n named is held here as field "<n> <reservation_id>" (ids have no
--                        space)
--   sc:{id}:l            the spend ledger of the current window (HASH execution_id -> amounts), and
--                        "<n> <execution_id>" for spend that budget n named
--   sc:{id}:ls           the set index: for an execution this budget named that was recorded on
--                        other budgets too, those budgets and when the last of their windows ends
--                        (HASH execution_id -> {"s": ids, "u": ms or absent for never})
--   sc:{id}:h            closed windows, newest first, the newest 100 (LIST of JSON)
--   sc:{id}:us           closed buckets of its usage series that counted usage, newest first,
--                        those within the retention (LIST of JSON)
--   sc:{id}:k            its children's ids (ZSET, every score 0), for list_budgets by parent
--   sc:{id}:d:<gen>:<k>  dedup/idempotency keys (JSON), expiring by TTL; <gen> is the budget's
--                        generation, so a deleted and re-created budget never sees old keys.
-- For g/rest the kind goes before the rest: sc:{g}:r/rest, sc:{g}:d/rest:<gen>:<k>. (After the
-- base, sc:{g}/rest:r would be the base key of budget g/rest:r.)
--
-- Nothing is written before every check of a call has passed: writes are queued and run by
-- save() at the end, so a call that returns an error leaves no trace (Lua has no rollback).

-- The largest quantity (SQL: max_qty): 2^53 - 1, exact in a double.
local MAX_QTY = 9007199254740991
local NULL -- cjson.null; the loading environment has no cjson, so it is set on the first call
local DAY = 86400000
local ARRAY = {}
local UNIT_MS = { second = 1000, minute = 60000, hour = 3600000 }
local CALENDAR = { day = true, week = true, month = true, year = true }
local HISTORY_KEPT = 100
-- SERIES_KEPT bounds a usage series' closed buckets by count as well as by time: 168 hours in
-- 7 days, 90 or 91 days in 90 (a DST change makes a day of 23 or 25 hours).
local SERIES_KEPT = 200

-- The channel on which the key of each new event stream is published (eventstreams.StreamsChannel in the Go module).
local STREAMS_CHANNEL = 'sc:events:streams'

-- How long a dispatched event is kept (SQL: purge_expired's 7 days): pull readers have that long.
local EVENT_RETENTION_MS = 7 * DAY

-- How many budgets a chain holds at most, the budget itself included (SQL: max_depth).
local MAX_DEPTH = 8

-- How many budgets one call charges at most, ancestors included (SQL: max_set).
local MAX_SET = 64

-- The instants a call may name (docs/semantics.md#time): [1970-01-01, 10000-01-01) UTC in ms. Every
-- time the library computes stays below 2^53 and 1e15, so it is exact and redis.call passes it on
-- as the integer the command expects.
local TIME_MAX = 253402300800000

-- How far past the server clock an at_ms may lie when replays are not allowed.
local FUTURE_SKEW = 5000

-- Whether callers may pass an at_ms later than the server clock plus FUTURE_SKEW (log replays and
-- tests). The loader (valkey.LibrarySource, `migrate valkey-load --allow-replay`) rewrites this
-- line; Valkey has no roles, so the setting is the server's.
local ALLOW_REPLAY = false

-- BATCH is set while sc_report_usage_batch runs its items (205_report_usage_batch.lua): a budget
-- several items charge, or an item takes the general path on, is read once and written once for
-- the rest of the batch (load_budget, save); the fast path reads and writes the others as a
-- call of its own does.
local BATCH

-- emit and alert are defined with the events (060_events.lua, as in sql/functions) and called
-- by the budget row and admission, which come before them.
local emit, alert

-- api holds the functions registered as sc_<name> (900_registration.lua), one file each.
local api = {}

local function fail(code, message)
    error({ sc = code .. ' ' .. message }, 0)
end

local function array(t)
    return setmetatable(t or {}, ARRAY)
end

-- decimal writes an integer exactly, for JSON and for the budget's HASH fields: %d (a C long) in
-- under half the time of tostring, which prints 14 significant digits (so %.0f past 1e14) and is
-- kept for what is not an integer.
local function decimal(v)
    if v % 1 == 0 and v > -1e18 and v < 1e18 then
        return string.format('%d', v)
    end
    if v > -1e14 and v < 1e14 then
        return tostring(v + 0)
    end
    return string.format('%.0f', v)
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
        return decimal(v)
    elseif t == 'string' then
        -- cjson writes '/' as '\/' (valid JSON, but ids like "acme/key-1" are read by people in
        -- messages): only a '/' yields that pair, so putting it back is exact.
        if v:find('/', 1, true) then
            return (cjson.encode(v):gsub('\\/', '/'))
        end
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

-- base_of is the base key of a budget (prefix 'sc:') or quota policy ('sc:q:') id: the hash tag
-- is the id up to its first '/'. An id that starts with '/' keeps the whole id as its tag: an
-- empty tag ({}) is no tag to Valkey, and its keys would scatter over the cluster.
local function base_of(prefix, id)
    local slash = id:find('/', 2, true)
    if slash then
        return prefix .. '{' .. id:sub(1, slash - 1) .. '}' .. id:sub(slash)
    end
    return prefix .. '{' .. id .. '}'
end

-- budget_id_of is the id of the budget at base key base (base_of's inverse for prefix 'sc:').
local function budget_id_of(base)
    local close = base:find('}', 1, true)
    return base:sub(5, close - 1) .. base:sub(close + 1)
end

-- subkey is the key of one kind ('r', 'l', 'h', 'tz', 'd', ...) that belongs to a base key: the
-- kind right after the hash tag, then the rest of the id, so that no subkey is another id's base.
local function subkey(base, kind)
    local close = base:find('}', 1, true)
    return base:sub(1, close) .. ':' .. kind .. base:sub(close + 1)
end

-- NOW is the server clock as the call first read it (register resets it): one instant per
-- call, as PostgreSQL's now() is one per transaction, and a batch of 1000 items reads TIME once.
local NOW

local function now_ms()
    if NOW == nil then
        local t = redis.call('TIME')
        NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    return NOW
end
