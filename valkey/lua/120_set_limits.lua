----------------------------------------------------------------------------------------------
-- set_limits (docs/sql-api.md#set_limits).

function api.set_limits(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local hard, soft
    if a.hard_limits ~= nil then hard = quantities('hard_limits', a.hard_limits, false) end
    if a.soft_limits ~= nil then soft = quantities('soft_limits', a.soft_limits, false) end
    if a.mode ~= nil and a.mode ~= 'enforce' and a.mode ~= 'observe' then
        invalid_argument('mode', 'must be enforce or observe')
    end
    -- Not null: replaces the percents; an empty array removes them.
    local ap = alert_percents_of('alert_percents', a.alert_percents)
    local series = series_every_of('usage_series', a.usage_series, true)
    local b, t = lock_budget(key, id, instant(a))
    b.hard_limits = hard or b.hard_limits
    b.soft_limits = soft or b.soft_limits
    b.mode = a.mode or b.mode
    if a.alert_percents ~= nil then
        b.alert_percents = ap
    end
    for _, dim in ipairs(sorted_keys(b.soft_limits)) do
        if b.hard_limits[dim] ~= nil and b.hard_limits[dim] < b.soft_limits[dim] then
            invalid_argument(soft == nil and 'hard_limits' or 'soft_limits',
                'soft limit of ' .. encode(dim) .. ' must not exceed its hard limit')
        end
    end
    -- Another width, or "off": a new series, without the old one's buckets.
    if series ~= nil and series ~= (b.series_every or 'off') then
        queue(b, 'DEL', subkey(key, 'us'))
        series_started(b, series ~= 'off' and series or nil, t)
    end
    b.updated_at = math.max(b.updated_at, t)
    save(b)
    return status_row(b, t)
end
