----------------------------------------------------------------------------------------------
-- budget_status (docs/sql-api.md#budget_status).

function api.budget_status(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local at = instant(a)
    local b = read_budget(key, id)
    local t = instant_on(b, at)
    advanced(b, t)
    return status_row(b, t)
end
