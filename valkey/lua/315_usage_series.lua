----------------------------------------------------------------------------------------------
-- usage_series (docs/sql-api.md#usage_series): the running bucket, then the closed buckets that
-- counted usage within the retention, newest first; none for a budget without a series.

function api.usage_series(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local max_rows = bounded('max_rows', a.max_rows or 200, 1, 1000)
    local at = instant(a)
    local b = read_budget(key, id)
    local rows = array()
    if not b.series_every then
        return rows
    end
    local t = instant_on(b, at)
    local cutoff = t - series_kept(b.series_every)
    -- A bucket ended by t but not closed yet is shown closed, as the next call will close it.
    local _, bucket = advanced(b, t)
    rows[1] = { bucket_start = b.series_start, bucket_end = b.series_next_at, usage = bucket_usage(b) }
    if #rows < max_rows and bucket and bucket.bucket_start >= cutoff and next(bucket.usage) ~= nil then
        rows[#rows + 1] = bucket
    end
    if #rows < max_rows then
        for _, raw in ipairs(redis.call('LRANGE', subkey(key, 'us'), 0, max_rows - #rows - 1)) do
            local r = cjson.decode(raw)
            if r.bucket_start < cutoff then
                break
            end
            rows[#rows + 1] = r
        end
    end
    return rows
end
