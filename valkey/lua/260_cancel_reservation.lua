----------------------------------------------------------------------------------------------
-- cancel_reservation (docs/sql-api.md#cancel_reservation).

function api.cancel_reservation(keys, a)
    local key, id, rid = reservation_args(keys, a)
    local held, ts, amounts = take_set(keys, key, id, rid, instant(a))
    for i, b in ipairs(held) do
        b.updated_at = math.max(b.updated_at, ts[i])
        save(b)
    end
    return { released = nonzero(amounts) }
end
