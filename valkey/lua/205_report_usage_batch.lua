----------------------------------------------------------------------------------------------
-- Batches (docs/semantics.md#batches; SQL: report_usage_batch).

-- HOLD_USES is how many items must charge a budget for the batch to read it whole and hold it
-- (one HGETALL, one write at the end) rather than let each item read and write its hot fields:
-- holding costs about what eight fast reads and writes do (instructions per item of 100-item
-- batches on budgets that 2, 4, 8, 17 and 100 items charge, held or not: docs/operations.md).
local HOLD_USES = 8

-- BATCH_FIELDS are the fields a batch item may have: report_usage's arguments but at_ms, which the
-- batch holds.
local BATCH_FIELDS = { budget_id = true, deltas = true, dedup_key = true, also_charge = true }

-- parent_of_key reads whether there is a budget at key and its parent: {parent_id = id or nil}, or
-- nil. A budget stored as a string is read whole (and held by the batch). With dims (the item's
-- valid dimensions) it reads what the fast path will need of the budget (read_hot) and keeps it as
-- .hot, so that an item which alone charges the budget reads it once.
local function parent_of_key(key, dims)
    local b = BATCH.budgets[key]
    if b then
        return b
    end
    if dims then
        local v = read_hot(key, dims)
        if v then
            return { parent_id = v[5] or nil, hot = v }
        end
    end
    local v = redis.pcall('HMGET', key, 'ws', 'p')
    if v.err then
        return load_budget(key)
    end
    return v[1] and { parent_id = v[2] or nil } or nil
end

-- lock_batch (SQL: lock_batch, which also locks them) raises missing_keys for every budget the
-- items charge whose base key is not among keys (the walk of charged_set over each item's budgets and their chains, on the stored
-- budgets), before any item runs: a batch writes nothing when one item lacks keys, and the client
-- retries it whole with them. Items with bad arguments are left for their own run to refuse.
-- A budget that HOLD_USES items or more charge is then read whole and held (BATCH) for all of
-- them: one read and one write for the batch instead of one of each per item. Of a budget that
-- one item alone charges, the walk's read is what the item's fast path reads (BATCH.hot): nothing
-- else can change the budget before that item runs. (Of a budget that 2 to HOLD_USES - 1 items
-- charge, each item reads what the items before it wrote.) It answers, per item, the dimensions
-- of the items the fast path may take with their arguments checked (a valid id, no dedup key, no
-- also_charge, fast_dims), else false.
local function lock_batch(keys, items)
    local have, missing, listed, by_item = declared(keys), {}, {}, nil
    local read, uses = {}, {} -- per key: what parent_of_key read, how many items charge it
    -- seen[id] is the last item whose walk reached id: one table for the batch, not one per item.
    local fast, seen = {}, {}
    for i, a in ipairs(items) do
        local mine, also = nil, a.also_charge
        local dims = also == nil and (a.dedup_key or '') == '' and is_id(a.budget_id)
            and fast_dims(a.deltas) or nil
        fast[i] = dims or false
        -- The item's budget, then those of also_charge, each with its chain.
        for j = 0, type(also) == 'table' and #also or 0 do
            local cur, steps = a.budget_id, 0
            if j > 0 then
                cur = also[j]
            end
            while is_id(cur) and seen[cur] ~= i and steps <= MAX_DEPTH do
                seen[cur], steps = i, steps + 1
                local key, ok, b = base_of('sc:', cur), true, nil
                if have[key] then
                    b = read[key]
                    if b == nil then
                        b = parent_of_key(key, dims) or false
                        read[key] = b
                    end
                    uses[key] = (uses[key] or 0) + 1
                else
                    if not listed[cur] then
                        listed[cur] = true
                        missing[#missing + 1] = cur
                    end
                    mine = mine or array()
                    mine[#mine + 1] = cur
                    ok, b = pcall(parent_of_key, key)
                end
                if not ok or not b then
                    break
                end
                cur = b.parent_id
            end
        end
        if mine then
            by_item = by_item or {}
            by_item[tostring(i - 1)] = mine
        end
    end
    if #missing > 0 then
        missing_keys(missing, by_item)
    end
    for key, n in pairs(uses) do
        local b = read[key]
        if n >= HOLD_USES and b then
            load_budget(key)
        elseif n == 1 and b and b.hot then
            BATCH.hot[key] = b.hot
        end
    end
    return fast
end

-- batch_item decodes one item that quick_report_args does not read, as report_usage decodes its
-- arguments, and gives it the batch's instant.
local function batch_item(text, at)
    local a = decode_args({ text })
    for f in pairs(a) do
        if not BATCH_FIELDS[f] then
            invalid_argument('items', 'unknown field ' .. encode(f))
        end
    end
    a.at_ms = at
    return a
end

-- batch_args reads the batch's arguments (SQL: batch_args): argv[1] the call's {at_ms?}, then
-- 1..1000 items, one JSON object each (SC002 naming items for anything else). It answers their
-- count, the instant, and per item its arguments (quick_report_args or batch_item) or the error
-- that fails it alone (errs).
local function batch_args(argv)
    local n = #argv - 1
    if n < 1 or n > 1000 then
        invalid_argument('items', 'must be a JSON array of 1..1000 objects')
    end
    local a = decode_args({ argv[1] })
    for f in pairs(a) do
        if f ~= 'at_ms' then
            invalid_argument('arguments', 'unknown field ' .. encode(f))
        end
    end
    local at = instant(a)
    local items, errs = {}, {}
    for i = 1, n do
        local item = quick_report_args(argv[i + 1])
        if item then
            item.at_ms = at
            items[i] = item
        else
            if not argv[i + 1]:find('^%s*{') then
                invalid_argument('items', 'must be a JSON array of 1..1000 objects')
            end
            local ok
            ok, item = pcall(batch_item, argv[i + 1], at)
            if ok then
                items[i] = item
            else
                items[i], errs[i] = {}, item
            end
        end
    end
    return n, at, items, errs
end

-- report_usage_batch admits the items (argv[2], ...: one JSON object each; argv[1] the call's
-- arguments: at_ms) in order, exactly as if each had been one sc_report_usage call after the
-- other, all at one instant: KEYS holds the base key of every budget the batch charges. Each item
-- runs report_usage's own paths (fast_apply or admit); a budget several items charge, or the
-- general path took, is held and written once at the batch's end (BATCH); an item that fails
-- raises before it changes anything, so it leaves the others undisturbed. The answer is the JSON
-- array of the items' outcomes, an item that failed as {"error_code", "error_message"}.
function api.report_usage_batch(keys, argv)
    local n, at, items, errs = batch_args(argv)
    BATCH = { budgets = {}, dirty = {}, order = {}, hot = {} }
    local ok, fast = pcall(lock_batch, keys, items)
    if not ok then
        BATCH = nil
        error(fast, 0)
    end
    -- report_usage's keys for an item: its base key first (base_key), then the batch's. Built
    -- once: only the first slot changes from item to item.
    local ik = { false }
    for j = 1, #keys do ik[j + 1] = keys[j] end
    local out = { '[' }
    for i = 1, n do
        local r, rerr
        if errs[i] then
            rerr = errs[i]
        else
            local id, kk = items[i].budget_id, keys
            if fast[i] or is_id(id) then
                ik[1], kk = base_of('sc:', id), ik
            end
            -- The fast path straight away when the walk checked the item's arguments; else, or
            -- when it declines, the general path (fast_report would refuse what the walk did).
            ok, r = true, nil
            if fast[i] then
                ok, r = pcall(fast_apply, kk, items[i].deltas, fast[i], at)
            end
            if ok and r == nil then
                ok, r = pcall(admit, 'report_usage', kk, items[i])
            end
            if not ok then
                r, rerr = nil, r
            end
        end
        if rerr then
            if type(rerr) ~= 'table' or not rerr.sc then
                -- Not a spendcap error: a bug. The items before it keep what they wrote.
                save_all()
                BATCH = nil
                error(rerr, 0)
            end
            r = encode({ error_code = rerr.sc:sub(1, 5), error_message = rerr.sc:sub(7) })
        elseif type(r) ~= 'string' then
            r = encode(r)
        end
        -- '[', then each answer followed by ',' (the last by ']'): one concat, one string.
        out[2 * i], out[2 * i + 1] = r, i < n and ',' or ']'
    end
    save_all()
    BATCH = nil
    return table.concat(out)
end
