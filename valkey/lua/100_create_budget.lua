----------------------------------------------------------------------------------------------
-- create_budget (docs/sql-api.md#create_budget).

function api.create_budget(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local hard = quantities('hard_limits', a.hard_limits or {}, false)
    local soft = quantities('soft_limits', a.soft_limits or {}, false)
    for _, dim in ipairs(sorted_keys(soft)) do
        if hard[dim] ~= nil and hard[dim] < soft[dim] then
            invalid_argument('soft_limits', encode(dim) .. ' must not exceed its hard limit')
        end
    end
    local n, unit, every
    if a.reset_every ~= nil then
        n, unit, every = parse_period(a.reset_every)
    elseif a.reset_anchor ~= nil then
        invalid_argument('reset_anchor', 'requires reset_every')
    end
    local tz = a.reset_timezone or 'UTC'
    local z = zone(tz, a.tz_offsets)
    local mode = a.mode or 'enforce'
    if mode ~= 'enforce' and mode ~= 'observe' then
        invalid_argument('mode', 'must be enforce or observe')
    end
    local ttl = bounded('dedup_ttl_seconds', a.dedup_ttl_seconds or 86400, 1, 2592000)
    if a.scope_type ~= nil and type(a.scope_type) ~= 'string' then invalid_argument('scope_type', 'must be a string') end
    if a.scope_id ~= nil and type(a.scope_id) ~= 'string' then invalid_argument('scope_id', 'must be a string') end
    local anchor_arg = a.reset_anchor
    if anchor_arg ~= nil and not in_time_range(anchor_arg) then
        invalid_argument('reset_anchor', 'must be an integer of Unix milliseconds from 1970-01-01 to 9999-12-31 UTC')
    end
    local ap = alert_percents_of('alert_percents', a.alert_percents)
    local series = series_every_of('usage_series', a.usage_series, false)
    local rule = a.if_exists or 'error'
    if rule ~= 'error' and rule ~= 'keep' and rule ~= 'update' then
        invalid_argument('if_exists', 'must be error, keep or update')
    end
    local t = instant(a)
    local parent
    if a.parent_id ~= nil then
        parent = lock_parent(keys, 2, a.parent_id, id)
    end

    local old = load_budget(key)
    if old then
        if rule == 'keep' then
            advanced(old, instant_on(old, t))
            return { budget_id = id, created = false, window_start = old.window_start, next_reset_at = opt(old.next_reset_at) }
        end
        local limits_differ = not same_quantities(old.hard_limits, hard) or not same_quantities(old.soft_limits, soft)
            or old.mode ~= mode or encode(old.alert_percents and array(old.alert_percents)) ~= encode(ap)
            or old.series_every ~= series
        -- What set_limits and set_parent cannot change must match under every rule.
        if old.reset_every ~= every or old.reset_timezone ~= tz or old.scope_type ~= a.scope_type or old.scope_id ~= a.scope_id
           or old.dedup_ttl_seconds ~= ttl or (anchor_arg ~= nil and old.reset_anchor ~= anchor_arg)
           or rule == 'error' and (limits_differ or old.parent_id ~= a.parent_id) then
            fail('SC005', 'budget_id: budget ' .. encode(id) .. ' exists with a different definition')
        end
        -- 'update': the rest is made to match as set_parent and set_limits would (usage, window
        -- and history kept), each only when it differs. The keys are set_parent's: the budget, the
        -- new parent's chain, then the old parent.
        if old.parent_id ~= a.parent_id then
            api.set_parent(keys, { budget_id = id, parent_id = a.parent_id, at_ms = a.at_ms })
        end
        if limits_differ then
            api.set_limits(keys, { budget_id = id, hard_limits = hard, soft_limits = soft, mode = mode,
                                   alert_percents = ap or array(), usage_series = series or 'off', at_ms = a.at_ms })
        end
        old = read_budget(key, id)
        advanced(old, instant_on(old, t))
        return { budget_id = id, created = false, window_start = old.window_start, next_reset_at = opt(old.next_reset_at) }
    end

    local clock = redis.call('TIME')
    local b = { budget_id = id, hard_limits = hard, soft_limits = soft, reset_timezone = tz, mode = mode,
                scope_type = a.scope_type, scope_id = a.scope_id, dedup_ttl_seconds = ttl, created_at = t,
                updated_at = t, window_seq = 1, window_k = -1, window_start = t, usage = {}, reserved = {},
                breach_count = 0, soft_breach_count = 0, window_breach_count = 0, window_soft_breach_count = 0,
                parent_id = a.parent_id, child_count = 0, alert_percents = ap,
                gen = clock[1] .. '.' .. clock[2], _key = key, _writes = {}, _zone = z }
    if every then
        local anchor = anchor_arg or default_anchor(t, unit, z)
        b.reset_every, b.reset_n, b.reset_unit, b.reset_anchor = every, n, unit, anchor
        b.window_k, b.window_start, b.next_reset_at = window_of(anchor, n, unit, z, t, t)
    end
    series_started(b, series, t)
    if type(z) == 'table' then
        for i = 1, #z do setmetatable(z[i], ARRAY) end
        queue(b, 'SET', subkey(key, 'tz'), encode(array(z)))
    end
    save(b)
    if parent then
        parent.child_count = (parent.child_count or 0) + 1
        queue(parent, 'ZADD', subkey(parent._key, 'k'), 0, id)
        save(parent)
    end
    return { budget_id = id, created = true, window_start = b.window_start, next_reset_at = opt(b.next_reset_at) }
end
