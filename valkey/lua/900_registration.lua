----------------------------------------------------------------------------------------------
-- Registration: every call answers one JSON document, or an error reply carrying its spendcap error
-- code.

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

-- READ_ONLY are the functions that write nothing: flagged no-writes, so they run on replicas.
local READ_ONLY = { check_usage = true, budget_status = true, budget_history = true, events_since = true, recent_events = true,
                    budget_reservations = true, list_quota_policies = true, usage_series = true,
                    quota_status = true }
-- list_budgets is not among them: it corrects the listing index as it reads it.
-- DECODE are the functions whose arguments another decoder reads (decode_args by default).
local DECODE = { report_usage = report_usage_args, report_usage_batch = raw }

-- FUNCTIONS are the functions of api, registered as sc_<name>. (The loading environment has no
-- pairs or ipairs: the names are listed.)
local FUNCTIONS = {
    'create_budget', 'set_limits', 'delete_budget', 'set_parent', 'report_usage', 'report_usage_batch',
    'check_usage', 'record_spend', 'release_spend', 'reserve', 'settle', 'cancel_reservation',
    'reset_budget', 'budget_status', 'budget_reservations', 'budget_history', 'usage_series', 'events_since', 'recent_events', 'purge_events',
    'create_quota_policy', 'acquire_quota', 'renew_quota', 'release_quota', 'quota_status',
    'delete_quota_policy', 'list_quota_policies', 'index_policy', 'audit', 'list_budgets', 'index_budget',
}

for i = 1, #FUNCTIONS do
    local name = FUNCTIONS[i]
    register(name, api[name], READ_ONLY[name], DECODE[name])
end
