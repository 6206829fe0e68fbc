----------------------------------------------------------------------------------------------
-- Registration: every call answers one JSON document, or an error reply carrying its spendcap error code.

-- run calls fn with the arguments decode makes of argv and encodes its answer; a string is an
-- answer already encoded (fast_report, report_usage_batch): no API call answers a bare string.
local function run(fn, decode, keys, argv)
    local r = fn(keys, decode(argv))
    if type(r) == 'string' then
        return r
    end
    return encode(r)
end

-- raw hands a function argv as it comes.
local function raw(argv)
    return argv
end

-- register registers fn as sc_<name>, its arguments decoded by decode (decode_args by default).
local function register(name, fn, readonly, decode)
    redis.register_function({
        function_name = 'sc_' .. name,
        callback = function(keys, argv)
            NULL = cjson.null
            BATCH = nil -- a batch's cache never outlives its call
            NOW = nil
            local ok, res = pcall(run, fn, decode or decode_args, keys, argv)
            if ok then
                return res
            end
            if type(res) == 'table' and res.sc then
                return redis.error_reply(res.sc)
            end
            error(res, 0)
        end,
        flags = readonly and { 'no-writes' } or {},
    })
end

register('create_budget', api.create_budget)
register('set_limits', api.set_limits)
register('delete_budget', api.delete_budget)
register('set_parent', api.set_parent)
register('report_usage', api.report_usage, false, report_usage_args)
register('report_usage_batch', report_usage_batch, false, raw)
register('check_usage', api.check_usage, true)
register('record_spend', api.record_spend)
register('release_spend', api.release_spend)
register('reserve', api.reserve)
register('settle', api.settle)
register('cancel_reservation', api.cancel_reservation)
register('reset_budget', api.reset_budget)
register('budget_status', api.budget_status, true)
register('budget_history', api.budget_history, true)
register('events_since', api.events_since, true)
register('purge_events', api.purge_events)
register('create_quota_policy', api.create_quota_policy)
register('acquire_quota', api.acquire_quota)
register('renew_quota', api.renew_quota)
register('release_quota', api.release_quota)
register('quota_status', api.quota_status, true)
register('audit', api.audit)
register('delete_quota_policy', api.delete_quota_policy)
