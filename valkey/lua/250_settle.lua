----------------------------------------------------------------------------------------------
-- settle (docs/sql-api.md#settle), and the prologue it shares with cancel_reservation.

-- reservation_args checks the arguments that settle and cancel_reservation share.
local function reservation_args(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local rid = a.reservation_id
    check_id('reservation_id', rid)
    return key, id, rid
end

-- take_set is the prologue of settle and cancel_reservation: the named budget's live reservation
-- taken (SC007 when there is none), and the other budgets of its set with their share of it taken
-- too. It returns the budgets that held it, ascending, their instants and the reserved amounts.
local function take_set(keys, key, id, rid, at)
    local b, t = lock_budget(key, id, at)
    local r = take_reservation(b, rid, t)
    if not r then
        reservation_not_found(rid)
    end
    local held, ts = { b }, { t }
    if r.s ~= nil and r.s ~= NULL then
        local ms, mts = read_members(keys, r.s, at)
        for i, m in ipairs(ms) do
            if take_reservation(m, field(m, id, rid), mts[i]) then
                held[#held + 1], ts[#ts + 1] = m, mts[i]
            end
        end
    end
    -- Ascending ids, as every set is evaluated.
    local order = {}
    for i = 1, #held do order[i] = i end
    table.sort(order, function(x, y) return held[x].budget_id < held[y].budget_id end)
    local hs, hts = {}, {}
    for i, j in ipairs(order) do hs[i], hts[i] = held[j], ts[j] end
    return hs, hts, r.a
end

function api.settle(keys, a)
    local key, id, rid = reservation_args(keys, a)
    local d = quantities('actual', a.actual, false)
    local held, ts = take_set(keys, key, id, rid, instant(a))
    local es, ids, named = {}, {}, nil
    for i, b in ipairs(held) do
        es[i] = evaluate(b, b.reserved, d, 'actual', true)
        ids[i] = b.budget_id
        if b.budget_id == id then named = i end
    end
    local o = set_outcome(es, ids, named)
    o.remaining = {}
    for i, b in ipairs(held) do
        local before, wbc = b.usage, b.window_breach_count
        counted(b, es[i], ts[i])
        b.usage = plus(b.usage, d)
        b.updated_at = math.max(b.updated_at, ts[i])
        alert(b, before, es[i], ts[i], wbc)
        save(b)
        remaining_into(o.remaining, b, d)
    end
    return o
end
