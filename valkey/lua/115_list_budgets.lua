----------------------------------------------------------------------------------------------
-- list_budgets (docs/sql-api.md#list_budgets): a page of budgets from one listing index.

-- list_args checks list_budgets' arguments as PostgreSQL does (the same messages), and its
-- cursor: after's utilisation and id in the utilisation order, its id in the id order.
local function list_args(a)
    local prefix = a.id_prefix ~= '' and a.id_prefix or nil
    local part = a.id_contains ~= '' and a.id_contains or nil
    if prefix ~= nil then check_id('id_prefix', prefix) end
    if part ~= nil then check_id('id_contains', part) end
    if a.mode ~= nil and a.mode ~= 'enforce' and a.mode ~= 'observe' then
        invalid_argument('mode', 'must be enforce, observe or null (any)')
    end
    if a.parent_id ~= nil then
        check_id('parent_id', a.parent_id)
        if a.roots_only then
            invalid_argument('roots_only', 'budgets with parent_id are not roots: pass one of the two')
        end
    end
    local order = a.order_by
    if order == nil then order = 'id' end
    if order ~= 'id' and order ~= 'utilisation' then
        invalid_argument('order_by', 'must be id or utilisation')
    end
    local after_u, after_id
    if a.after ~= nil then
        if order == 'utilisation' then
            local u, id = tostring(a.after):match('^(%-?%d+):(.*)$')
            if u == nil or not (u == '-1' or u == '0' or u:match('^[1-9]%d?%d?%d?%d?%d?$')) or not is_id(id) then
                invalid_argument('after', 'must be the cursor of a row listed in utilisation order')
            end
            after_u, after_id = tonumber(u), id
        else
            if not is_id(a.after) then
                invalid_argument('after', 'must be the cursor of a row listed in id order')
            end
            after_id = a.after
        end
    end
    local max_rows = a.max_rows
    if max_rows == nil then max_rows = 50 end
    bounded('max_rows', max_rows, 1, 1000)
    local scan = a.scan
    if scan == nil then scan = 1000 end
    bounded('scan', scan, 1, 10000)
    return prefix, part, order, after_u, after_id, max_rows, scan
end

-- listing_row is one row of list_budgets: budget b as of t (advanced), its live reserved, its
-- utilisation u (-1: none) and its cursor (SQL: listing_row).
local function listing_row(b, reserved, u, cursor)
    return {
        budget_id = b.budget_id, parent_id = opt(b.parent_id), mode = b.mode, reset_every = opt(b.reset_every),
        window_start = b.window_start, next_reset_at = opt(b.next_reset_at), hard_limits = b.hard_limits,
        soft_limits = b.soft_limits, usage = b.usage, reserved = reserved,
        alert_percents = b.alert_percents and array(b.alert_percents) or NULL,
        utilisation_permille = u >= 0 and u or NULL, near_limit = u >= near_permille(b.alert_percents),
        window_breach_count = b.window_breach_count, window_soft_breach_count = b.window_soft_breach_count,
        children = b.child_count or 0, cursor = cursor,
    }
end

-- list_children answers list_budgets for the children ids of parent a.parent_id: each read as
-- budget_status reads it, filtered, sorted in the order asked for from the cursor after, at most
-- max_rows. Every child is read: the caller bounds how many.
local function list_children(ids, a, prefix, part, by_util, after_u, after_id, max_rows, at)
    local found = {}
    for _, id in ipairs(ids) do
        if (prefix == nil or id:sub(1, #prefix) == prefix) and (part == nil or id:find(part, 1, true) ~= nil) then
            local b = read_stored(base_of('sc:', id))
            if b and b.parent_id == a.parent_id and (a.mode == nil or b.mode == a.mode) then
                local t = instant_on(b, at)
                advanced(b, t)
                local reserved = live_reserved(b, t, false)
                local u = utilisation(b.hard_limits, b.usage, reserved) or -1
                local past = after_id == nil
                    or (by_util and (u < after_u or (u == after_u and id > after_id)))
                    or (not by_util and id > after_id)
                if past and (not a.near_limit or u >= near_permille(b.alert_percents))
                    and (not a.breached or b.window_breach_count > 0) then
                    found[#found + 1] = { id = id, u = u, row = listing_row(b, reserved, u, by_util and (u .. ':' .. id) or id) }
                end
            end
        end
    end
    table.sort(found, function(x, y)
        if by_util and x.u ~= y.u then return x.u > y.u end
        return x.id < y.id
    end)
    local rows = {}
    for i = 1, math.min(max_rows, #found) do
        rows[i] = found[i].row
    end
    return { rows = array(rows), next = NULL, done = true }
end

-- list_budgets reads the listing index whose ids and util sets are keys[1] and keys[2] (sc:ix:ids
-- and sc:ix:util, or a cluster slot's), from after in the order asked for, examining at most scan
-- entries, and answers the rows that match (at most max_rows) and where to go on: next, the
-- cursor of the last entry examined, and done, whether the index has no entry after it. The Go
-- client calls again from next until its page is full or done, and on a cluster merges the
-- slots' pages. Each budget is read as budget_status reads it; an entry whose budget is gone is
-- removed. In the utilisation order an entry whose utilisation changed since its budget was
-- written (its window ended, or a reservation expired, with no call since) is moved to where it
-- belongs now and read there: the order is the current one, and the index learns it. These are
-- its only writes.
function api.list_budgets(keys, a)
    local ix = type(keys[1]) == 'string' and keys[1]:match('^(sc:ix.*):ids$')
    if not ix or (ix ~= 'sc:ix' and not ix:match('^sc:ix:{[0-9A-Za-z][0-9A-Za-z][0-9A-Za-z]}$')) or keys[2] ~= ix .. ':util' then
        invalid_argument('keys', 'must be a listing index: sc:ix:ids and sc:ix:util, or a slot\'s sc:ix:{<tag>}:ids and :util')
    end
    local prefix, part, order, after_u, after_id, max_rows, scan = list_args(a)
    local at = instant(a)
    local by_util = order == 'utilisation'
    if a.parent_id ~= nil then
        -- A parent's children are in its slot, in its children set (kept with child_count): read
        -- there unless there are more than one call may examine.
        local parent = base_of('sc:', a.parent_id)
        if index_prefix(parent) ~= ix then
            return { rows = array({}), next = NULL, done = true }
        end
        local kids = subkey(parent, 'k')
        if redis.call('ZCARD', kids) <= scan then
            return list_children(redis.call('ZRANGE', kids, 0, -1), a, prefix, part, by_util, after_u, after_id, max_rows, at)
        end
    end
    local set = by_util and keys[2] or keys[1]
    local start, stop = '-', '+'
    if by_util then
        if after_id then start = '(' .. util_member(after_id, after_u) end
    else
        if prefix then start, stop = '[' .. prefix, '(' .. prefix .. '\127' end
        if after_id and (prefix == nil or after_id >= prefix) then start = '(' .. after_id end
    end
    local rows, examined, next, first = {}, 0, NULL, start
    while #rows < max_rows and examined < scan do
        local chunk = redis.call('ZRANGE', set, start, stop, 'BYLEX', 'LIMIT', 0, math.min(100, scan - examined))
        if #chunk == 0 then
            return { rows = array(rows), next = next, done = true }
        end
        local moved = false
        for _, m in ipairs(chunk) do
            examined = examined + 1
            local id, stored = m, nil
            if by_util then
                id, stored = m:sub(8), 999999 - tonumber(m:sub(1, 7))
            end
            start = '(' .. m
            next = by_util and (stored .. ':' .. id) or id
            local key = base_of('sc:', id)
            local b = false -- false: not searched for; nil: gone
            if (prefix == nil or id:sub(1, #prefix) == prefix) and (part == nil or id:find(part, 1, true) ~= nil) then
                b = read_stored(key)
            end
            if b == nil then
                redis.call('ZREM', set, m) -- its budget is gone
            elseif b and (a.mode == nil or b.mode == a.mode) and (a.parent_id == nil or b.parent_id == a.parent_id)
                and (not a.roots_only or b.parent_id == nil) then
                local t = instant_on(b, at)
                advanced(b, t)
                local reserved = live_reserved(b, t, false)
                local u = utilisation(b.hard_limits, b.usage, reserved) or -1
                if by_util and u ~= stored then
                    -- Learned now: written where it belongs. A utilisation that fell (a window
                    -- ended, a reservation expired) belongs further on: read on from here and
                    -- the range finds it there. One that rose (listed at an earlier instant than
                    -- the index learned, or stored by an older version) belongs before: the page
                    -- starts again.
                    redis.call('ZREM', set, m)
                    redis.call('ZADD', set, 0, util_member(id, u))
                    if not b._legacy then redis.call('HSET', key, 'ut', u) end
                    if u > stored then
                        rows, start = {}, first
                    end
                    moved = true
                    break
                end
                if (not a.near_limit or u >= near_permille(b.alert_percents)) and (not a.breached or b.window_breach_count > 0) then
                    rows[#rows + 1] = listing_row(b, reserved, u, by_util and (u .. ':' .. id) or id)
                    if #rows == max_rows then break end
                end
            end
            if examined >= scan then break end
        end
        if not moved and #chunk < 100 and #rows < max_rows and examined < scan then
            return { rows = array(rows), next = next, done = true }
        end
    end
    return { rows = array(rows), next = next, done = false }
end

-- index_budget (re)indexes the budget at keys[1] for list_budgets when it is not yet (stored by a
-- version before the listing index): `migrate valkey-load` calls it for every budget. It stores
-- the budget, which indexes it; an indexed budget is left as it is. A child is also put in its
-- parent's children set.
function api.index_budget(keys, a)
    if type(keys[1]) ~= 'string' or keys[1]:sub(1, 4) ~= 'sc:{' or budget_id_of(keys[1]) == '' then
        invalid_argument('keys', 'must be the base key of a budget (sc:{...})')
    end
    local b = read_stored(keys[1])
    if b ~= nil and b.parent_id ~= nil then
        -- Its parent's children set, which versions before it did not keep (a no-op after).
        redis.call('ZADD', subkey(base_of('sc:', b.parent_id), 'k'), 0, b.budget_id)
    end
    if b == nil or not (b._legacy or b._stored.ut == nil) then
        return { indexed = false }
    end
    store(b)
    return { indexed = true }
end
