----------------------------------------------------------------------------------------------
-- budget_reservations (docs/sql-api.md#budget_reservations; SQL: 112_budget_reservations.sql):
-- the reservations live on a budget at `at`, soonest to expire first (then by named_id and
-- reservation_id, byte order), at most max_rows (1..1000). A reservation made on a child or a
-- set is held under "<named_id> <reservation_id>" (field): it is listed with the budget it was
-- made on. It reads the budget's whole reservations hash.

function api.budget_reservations(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local max = bounded('max_rows', a.max_rows or 100, 1, 1000)
    local at = instant(a)
    local b = read_budget(key, id)
    local t = instant_on(b, at)
    local all = redis.call('HGETALL', subkey(key, 'r'))
    local rows = {}
    for i = 1, #all, 2 do
        local r = cjson.decode(all[i + 1])
        if r.exp > t then
            local named, ref = all[i]:match('^(%S+) (.+)$')
            if not named then
                named, ref = id, all[i]
            end
            rows[#rows + 1] = { reservation_id = ref, named_id = named, amounts = r.a, expires_at = r.exp }
        end
    end
    table.sort(rows, function(x, y)
        if x.expires_at ~= y.expires_at then return x.expires_at < y.expires_at end
        if x.named_id ~= y.named_id then return x.named_id < y.named_id end
        return x.reservation_id < y.reservation_id
    end)
    local out = {}
    for i = 1, math.min(max, #rows) do
        out[i] = rows[i]
    end
    return array(out)
end
