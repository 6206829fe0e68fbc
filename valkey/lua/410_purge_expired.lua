----------------------------------------------------------------------------------------------
-- purge_events: what purge_expired (docs/sql-api.md#purge_expired) does to events, on one slot
-- group's stream.

-- purge_events is purge_expired's events rule on one slot group's stream (SQL: events dispatched
-- and older than EVENT_RETENTION_MS): from the oldest, it deletes the events the worker has handed
-- to its delivery queue (event_id <= through_id, the stream's cursor) that occurred
-- EVENT_RETENTION_MS or more before at, at most max_rows, and stops at the first event that must
-- stay (a stream is trimmed from its start: an event out of time order waits for those before it).
function api.purge_events(keys, a)
    local stream = stream_of(keys)
    local through = a.through_id
    if not is_int(through) or through < 0 then
        invalid_argument('through_id', 'must be 0 or an event_id')
    end
    local max = bounded('max_rows', a.max_rows or 10000, 1, 100000)
    local cutoff = instant(a, true) - EVENT_RETENTION_MS
    local n, last, done = 0, nil, false
    while not done and n < max do
        local want = math.min(max - n, 1000)
        local page = redis.call('XRANGE', stream, last and string.format('(%d-1', last) or '-', '+', 'COUNT', want)
        for _, entry in ipairs(page) do
            local id = tonumber(entry[1]:match('^(%d+)-'))
            if id > through or cjson.decode(entry[2][2]).occurred_at > cutoff then
                done = true
                break
            end
            n, last = n + 1, id
        end
        done = done or #page < want
    end
    if last then
        redis.call('XTRIM', stream, 'MINID', string.format('%d-0', last + 1))
    end
    return { events = n }
end
