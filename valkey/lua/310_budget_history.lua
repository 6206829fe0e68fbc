----------------------------------------------------------------------------------------------
-- budget_history (docs/sql-api.md#budget_history).

function api.budget_history(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local max_rows = bounded('max_rows', a.max_rows or 100, 1, 10000)
    local at = instant(a)
    local b = read_budget(key, id)
    local t = instant_on(b, at)
    local rows = array()
    local closed = advanced(b, t)
    -- A due window not rolled yet is shown as the schedule will close it.
    if closed and has_activity(closed) then
        closed.closed_by = 'schedule'
        rows[1] = closed
        max_rows = max_rows - 1
    end
    if max_rows > 0 then
        for _, raw in ipairs(redis.call('LRANGE', subkey(key, 'h'), 0, max_rows - 1)) do
            rows[#rows + 1] = cjson.decode(raw)
        end
    end
    return rows
end
