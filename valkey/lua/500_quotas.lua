----------------------------------------------------------------------------------------------
-- Quota policies (docs/semantics.md#quota-policies). Keys, under the hash tag {<policy_id>}:
--   sc:q:{id}     the definition (JSON)
--   sc:q:{id}:w   window entries (ZSET, score = admission time in ms), trimmed on every acquire
--   sc:q:{id}:l   leases (ZSET holder -> expiry in ms)
--   sc:q:{id}:n   the counter naming window entries

local function policy_key(keys, id)
    return base_key(keys, 'policy_id', 'sc:q:', id)
end

local function read_policy(key, id)
    local raw = redis.call('GET', key)
    if not raw then
        fail('SC006', 'policy_id: policy ' .. cjson.encode(id) .. ' not found')
    end
    return cjson.decode(raw)
end

local function bounded(arg, v, min, max)
    if not is_int(v) or v < min or v > max then
        invalid(arg, 'must be ' .. min .. '..' .. max)
    end
    return v
end

function api.create_quota_policy(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local w = bounded('window_seconds', a.window_seconds or 0, 0, 2592000)
    local mr = bounded('max_requests', a.max_requests or 0, 0, 1000000)
    if mr > 0 and w == 0 then
        invalid('window_seconds', 'must be above 0 when max_requests is set')
    end
    local mc = bounded('max_concurrent', a.max_concurrent or 0, 0, 1000000)
    local ls = bounded('lease_seconds', a.lease_seconds or 60, 1, 86400)
    local at = at_of(a)
    local raw = redis.call('GET', key)
    if raw then
        local p = cjson.decode(raw)
        if p.w ~= w or p.mr ~= mr or p.mc ~= mc or p.ls ~= ls then
            fail('SC005', 'policy_id: policy ' .. cjson.encode(id) .. ' exists with a different definition')
        end
        return { policy_id = id, created = false }
    end
    redis.call('SET', key, encode({ w = w, mr = mr, mc = mc, ls = ls, created = at }))
    return { policy_id = id, created = true }
end

local function first_score(key)
    local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tonumber(r[2])
end

function api.acquire_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a, false)
    local p = read_policy(key, id)
    if p.w > 0 then
        redis.call('ZREMRANGEBYSCORE', subkey(key, 'w'), '-inf', t - p.w * 1000)
    end
    redis.call('ZREMRANGEBYSCORE', subkey(key, 'l'), '-inf', t)
    local r = { admitted = true, reason = 'ok', retry_after_ms = 0,
                in_window = redis.call('ZCARD', subkey(key, 'w')), active = redis.call('ZCARD', subkey(key, 'l')) }
    if redis.call('ZSCORE', subkey(key, 'l'), a.holder_id) then
        r.reason = 'already_held'
        return r
    end
    if p.mr > 0 and r.in_window >= p.mr then
        r.admitted, r.reason = false, 'rate_limited'
        r.retry_after_ms = first_score(subkey(key, 'w')) + p.w * 1000 - t
        return r
    end
    if p.mc > 0 and r.active >= p.mc then
        r.admitted, r.reason = false, 'concurrency_limited'
        r.retry_after_ms = first_score(subkey(key, 'l')) - t
        return r
    end
    if p.w > 0 then
        redis.call('ZADD', subkey(key, 'w'), t, redis.call('INCR', subkey(key, 'n')))
        r.in_window = r.in_window + 1
    end
    redis.call('ZADD', subkey(key, 'l'), t + p.ls * 1000, a.holder_id)
    r.active = r.active + 1
    return r
end

function api.renew_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a)
    local p = read_policy(key, id)
    local expiry = tonumber(redis.call('ZSCORE', subkey(key, 'l'), a.holder_id) or nil)
    if not expiry or expiry <= t then
        invalid('holder_id', cjson.encode(a.holder_id) .. ' holds no live lease')
    end
    redis.call('ZADD', subkey(key, 'l'), t + p.ls * 1000, a.holder_id)
    return { expires_at = t + p.ls * 1000 }
end

function api.release_quota(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local t = at_of(a)
    read_policy(key, id)
    local expiry = tonumber(redis.call('ZSCORE', subkey(key, 'l'), a.holder_id) or nil)
    redis.call('ZREM', subkey(key, 'l'), a.holder_id)
    return { released = expiry ~= nil and expiry > t }
end

function api.quota_status(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local t = at_of(a)
    local p = read_policy(key, id)
    local in_window = 0
    if p.w > 0 then
        in_window = redis.call('ZCOUNT', subkey(key, 'w'), '(' .. encode(t - p.w * 1000), '+inf')
    end
    local holders = redis.call('ZRANGEBYSCORE', subkey(key, 'l'), '(' .. encode(t), '+inf')
    table.sort(holders)
    return { policy_id = id, window_seconds = p.w, max_requests = p.mr, max_concurrent = p.mc, lease_seconds = p.ls,
             in_window = in_window, active = #holders, holders = array(holders) }
end

function api.delete_quota_policy(keys, a)
    local key = policy_key(keys, a.policy_id)
    local existed = redis.call('EXISTS', key) == 1
    redis.call('DEL', key, subkey(key, 'w'), subkey(key, 'l'), subkey(key, 'n'))
    return { deleted = existed }
end
