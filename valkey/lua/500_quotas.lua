----------------------------------------------------------------------------------------------
-- Quota policies (docs/semantics.md#quota-policies). Keys, under the hash tag {<policy_id>}:
--   sc:q:{id}     the definition (JSON)
--   sc:q:{id}:w   window entries (ZSET, score = admission time in ms), trimmed on every acquire
--   sc:q:{id}:l   leases (ZSET holder -> expiry in ms)
--   sc:q:{id}:n   the counter naming window entries

local function policy_key(keys, id)
    return base_key(keys, 'policy_id', 'sc:q:', id)
end

-- policy_index is the listing index that holds the policy at base key base (list_quota_policies):
-- a sorted set of ids, next to the budgets' listing index (sc:ix:q, or sc:ix:{<tag>}:q per slot).
local function policy_index(base)
    return index_prefix(base) .. ':q'
end

-- in_window counts the admissions of policy p (at key) inside its sliding window at t, 0 without
-- a window (SQL: in_window).
local function in_window(key, p, t)
    if p.w <= 0 then
        return 0
    end
    return redis.call('ZCOUNT', subkey(key, 'w'), '(' .. encode(t - p.w * 1000), '+inf')
end

-- policy_not_found raises SC006 naming the argument that named the policy (policy_id by default).
local function policy_not_found(id, arg)
    fail('SC006', (arg or 'policy_id') .. ': policy ' .. encode(id) .. ' not found')
end

-- lock_policy reads policy id at key (a call runs alone: nothing to lock); SC006 naming arg when
-- there is none.
local function lock_policy(key, id, arg)
    local raw = redis.call('GET', key)
    if not raw then
        policy_not_found(id, arg)
    end
    return cjson.decode(raw)
end

-- policy_set are the policies a quota call acts on (docs/semantics.md#quota-sets; SQL:
-- policy_set): policy_id and the ids of also_policies, once each, in ascending byte order. Every
-- one's base key must be among the call's keys (SC002 naming the policies whose keys are missing).
local function policy_set(keys, a)
    local ids = also_of(a, 'also_policies', a.policy_id)
    ids[#ids + 1] = a.policy_id
    table.sort(ids)
    local missing = undeclared(keys, 'sc:q:', ids)
    if missing then
        invalid_argument('keys', 'missing the keys of policies ' .. encode(array(missing)) .. ': pass the base key of every policy the call names')
    end
    return ids
end

-- lock_policies reads the policies of ids (SQL: lock_policies, which also locks them), each with
-- its base key (_key) and id (_id); SC006 for one that does not exist, naming policy_id or
-- also_policies as the call named it. It writes nothing, so a call that fails here has changed
-- nothing.
local function lock_policies(ids, named)
    local ps = {}
    for i, x in ipairs(ids) do
        local key = base_of('sc:q:', x)
        ps[i] = lock_policy(key, x, x == named and 'policy_id' or 'also_policies')
        ps[i]._key, ps[i]._id = key, x
    end
    return ps
end

function api.create_quota_policy(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local w = bounded('window_seconds', a.window_seconds or 0, 0, 2592000)
    local mr = bounded('max_requests', a.max_requests or 0, 0, 1000000)
    if mr > 0 and w == 0 then
        invalid_argument('window_seconds', 'must be above 0 when max_requests is set')
    end
    local mc = bounded('max_concurrent', a.max_concurrent or 0, 0, 1000000)
    local ls = bounded('lease_seconds', a.lease_seconds or 60, 1, 86400)
    local at = instant(a)
    local raw = redis.call('GET', key)
    if raw then
        local p = cjson.decode(raw)
        if p.w ~= w or p.mr ~= mr or p.mc ~= mc or p.ls ~= ls then
            fail('SC005', 'policy_id: policy ' .. encode(id) .. ' exists with a different definition')
        end
        -- Listed whatever version created it (a no-op when it already is).
        redis.call('ZADD', policy_index(key), 0, id)
        return { policy_id = id, created = false }
    end
    redis.call('SET', key, encode({ w = w, mr = mr, mc = mc, ls = ls, created = at }))
    redis.call('ZADD', policy_index(key), 0, id)
    return { policy_id = id, created = true }
end

local function first_score(key)
    local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tonumber(r[2])
end

-- holder_call is the prologue of acquire, renew and release: the arguments checked in SQL's order
-- (policy_id, holder_id, also_policies, at), then the policies read. past_ok as instant takes it.
local function holder_call(keys, a, past_ok)
    local id = a.policy_id
    policy_key(keys, id)
    check_id('holder_id', a.holder_id)
    local ids = policy_set(keys, a)
    local t = instant(a, past_ok)
    return id, lock_policies(ids, id), t
end

-- quota_check is what acquire_quota says for holder on policy p (SQL: quota_check) after dropping
-- p's window entries and leases that are over at t: a live lease of the holder is already_held
-- (admitted, nothing to count); a full window is rate_limited; a full set of leases is
-- concurrency_limited; else ok (to be admitted).
local function quota_check(p, holder, t)
    local key = p._key
    if p.w > 0 then
        redis.call('ZREMRANGEBYSCORE', subkey(key, 'w'), '-inf', t - p.w * 1000)
    end
    redis.call('ZREMRANGEBYSCORE', subkey(key, 'l'), '-inf', t)
    local r = { admitted = true, reason = 'ok', retry_after_ms = 0, policy_id = p._id,
                in_window = redis.call('ZCARD', subkey(key, 'w')), active = redis.call('ZCARD', subkey(key, 'l')) }
    if redis.call('ZSCORE', subkey(key, 'l'), holder) then
        r.reason = 'already_held'
    elseif p.mr > 0 and r.in_window >= p.mr then
        r.admitted, r.reason = false, 'rate_limited'
        r.retry_after_ms = first_score(subkey(key, 'w')) + p.w * 1000 - t
    elseif p.mc > 0 and r.active >= p.mc then
        r.admitted, r.reason = false, 'concurrency_limited'
        r.retry_after_ms = first_score(subkey(key, 'l')) - t
    end
    return r
end

-- acquire_quota (SQL: acquire_quota): the first refusal of the set in ascending policy_id order
-- refuses the call, nothing admitted anywhere; else every policy where the holder holds no live
-- lease admits it. Keys: policy_id's, then those of also_policies.
function api.acquire_quota(keys, a)
    local id, ps, t = holder_call(keys, a, false)
    -- Every policy is trimmed before the first refusal is reported, as SQL's lock_policies trims
    -- them all: a later call with an earlier at must find the same leases.
    local es, named, refusal = {}, nil, nil
    for i, p in ipairs(ps) do
        es[i] = quota_check(p, a.holder_id, t)
        if not es[i].admitted and not refusal then refusal = es[i] end
        if p._id == id then named = i end
    end
    if refusal then
        return refusal
    end
    local taken = false
    for i, p in ipairs(ps) do
        if es[i].reason == 'ok' then
            if p.w > 0 then
                redis.call('ZADD', subkey(p._key, 'w'), t, redis.call('INCR', subkey(p._key, 'n')))
                es[i].in_window = es[i].in_window + 1
            end
            redis.call('ZADD', subkey(p._key, 'l'), t + p.ls * 1000, a.holder_id)
            es[i].active = es[i].active + 1
            taken = true
        end
    end
    local r = es[named]
    r.reason = taken and 'ok' or 'already_held'
    return r
end

-- renew_quota (SQL: renew_quota): SC002 when the holder holds no live lease on policy_id, nothing
-- renewed; else every live lease of the set is renewed.
function api.renew_quota(keys, a)
    local id, ps, t = holder_call(keys, a)
    local live, r = {}, nil
    for i, p in ipairs(ps) do
        local expiry = tonumber(redis.call('ZSCORE', subkey(p._key, 'l'), a.holder_id) or nil)
        live[i] = expiry ~= nil and expiry > t
        if p._id == id then
            if not live[i] then
                invalid_argument('holder_id', encode(a.holder_id) .. ' holds no live lease')
            end
            r = { expires_at = t + p.ls * 1000 }
        end
    end
    for i, p in ipairs(ps) do
        if live[i] then
            redis.call('ZADD', subkey(p._key, 'l'), t + p.ls * 1000, a.holder_id)
        end
    end
    return r
end

-- release_quota (SQL: release_quota): ends the holder's lease on every policy of the set; released
-- when a live one was held on any.
function api.release_quota(keys, a)
    local id, ps, t = holder_call(keys, a)
    local released = false
    for _, p in ipairs(ps) do
        local expiry = tonumber(redis.call('ZSCORE', subkey(p._key, 'l'), a.holder_id) or nil)
        redis.call('ZREM', subkey(p._key, 'l'), a.holder_id)
        released = released or (expiry ~= nil and expiry > t)
    end
    return { released = released }
end

function api.quota_status(keys, a)
    local id = a.policy_id
    local key = policy_key(keys, id)
    local t = instant(a)
    local p = lock_policy(key, id)
    local holders = redis.call('ZRANGEBYSCORE', subkey(key, 'l'), '(' .. encode(t), '+inf')
    table.sort(holders)
    return { policy_id = id, window_seconds = p.w, max_requests = p.mr, max_concurrent = p.mc, lease_seconds = p.ls,
             in_window = in_window(key, p, t), active = #holders, holders = array(holders) }
end

function api.delete_quota_policy(keys, a)
    local key = policy_key(keys, a.policy_id)
    local existed = redis.call('EXISTS', key) == 1
    redis.call('DEL', key, subkey(key, 'w'), subkey(key, 'l'), subkey(key, 'n'))
    redis.call('ZREM', policy_index(key), a.policy_id)
    return { deleted = existed }
end

-- list_quota_policies (docs/sql-api.md#list_quota_policies; SQL: list_quota_policies) answers the
-- policies of the listing index keys[1] (sc:ix:q, or one slot's sc:ix:{<tag>}:q) whose id starts
-- with id_prefix after policy `after`, in id order, at most max_rows (1..1000), each with its
-- window count and live leases at `at`.
function api.list_quota_policies(keys, a)
    local ix = keys[1]
    if type(ix) ~= 'string' or not (ix == 'sc:ix:q' or ix:match('^sc:ix:{[0-9A-Za-z][0-9A-Za-z][0-9A-Za-z]}:q$')) then
        invalid_argument('keys', 'must be a policy listing index: sc:ix:q, or a slot\'s sc:ix:{<tag>}:q')
    end
    local prefix = a.id_prefix ~= '' and a.id_prefix or nil
    if prefix ~= nil then check_id('id_prefix', prefix) end
    if a.after ~= nil then check_id('after', a.after) end
    local max = bounded('max_rows', a.max_rows or 50, 1, 1000)
    local t = instant(a)
    local start, stop = '-', '+'
    if prefix then start, stop = '[' .. prefix, '(' .. prefix .. '\127' end
    if a.after ~= nil and (prefix == nil or a.after >= prefix) then start = '(' .. a.after end
    local rows = {}
    for _, id in ipairs(redis.call('ZRANGE', ix, start, stop, 'BYLEX', 'LIMIT', 0, max)) do
        local key = base_of('sc:q:', id)
        local raw = redis.call('GET', key)
        if raw then
            local p = cjson.decode(raw)
            rows[#rows + 1] = { policy_id = id, window_seconds = p.w, max_requests = p.mr, max_concurrent = p.mc,
                                lease_seconds = p.ls, in_window = in_window(key, p, t),
                                active = redis.call('ZCOUNT', subkey(key, 'l'), '(' .. encode(t), '+inf') }
        end
    end
    return array(rows)
end

-- index_policy lists the policy at base key keys[1] (sc:q:{...}) in its listing index when it is
-- not yet (created by a version before the index): loading the library calls it for every key
-- that may be one. Anything else at that key is left alone.
function api.index_policy(keys, a)
    local key = keys[1]
    if type(key) ~= 'string' or key:sub(1, 6) ~= 'sc:q:{' then
        invalid_argument('keys', 'must be the base key of a policy (sc:q:{...})')
    end
    local close = key:find('}', 1, true)
    local raw = close and key:sub(close + 1, close + 1) ~= ':' and redis.call('GET', key)
    local ok, p = pcall(cjson.decode, raw or 'null')
    if not ok or type(p) ~= 'table' or p.w == nil then
        return { indexed = false }
    end
    redis.call('ZADD', policy_index(key), 0, key:sub(7, close - 1) .. key:sub(close + 1))
    return { indexed = true }
end
