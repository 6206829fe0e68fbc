----------------------------------------------------------------------------------------------
-- Calendar: zones, wall clocks, calendar arithmetic from the anchor, windows
-- (docs/semantics.md#windows).

-- zone returns the zone's offset data: nil for UTC, a number of seconds for a fixed offset, or the
-- offset table of an IANA zone (which the caller provides, docs/semantics.md#valkey).
local function zone(tz, offsets)
    if type(tz) ~= 'string' then
        invalid_argument('reset_timezone', 'must be a string')
    end
    if tz == 'UTC' then
        return nil
    end
    local sign, hh, mm = tz:match('^([+-])(%d%d):([0-5]%d)$')
    if sign then
        local minutes = tonumber(hh) * 60 + tonumber(mm)
        if minutes > 14 * 60 then
            invalid_argument('reset_timezone', 'a fixed offset must be within -14:00..+14:00')
        end
        return (sign == '-' and -1 or 1) * minutes * 60
    end
    if #tz > 64 or not tz:find('^[%w_][%w_%+%-/]*$') then
        invalid_argument('reset_timezone', encode(tz) .. ' is not UTC, a fixed offset +HH:MM/-HH:MM, or an IANA time zone')
    end
    if type(offsets) ~= 'table' or #offsets == 0 or #offsets > 5000 then
        invalid_argument('reset_timezone', encode(tz) .. ' needs tz_offsets: an array of [from_ms, offset_seconds] pairs')
    end
    local prev
    for i = 1, #offsets do
        local p = offsets[i]
        if type(p) ~= 'table' or #p ~= 2 or not is_int(p[1]) or not is_int(p[2]) or math.abs(p[2]) > 86400
           or (prev and p[1] <= prev) then
            invalid_argument('tz_offsets', 'must be [from_ms, offset_seconds] pairs of integers in ascending from_ms')
        end
        prev = p[1]
    end
    return offsets
end

-- offset_at is the offset in force at instant t: the last pair starting at or before t, the
-- first pair before them all.
local function offset_at(p, t)
    if t < p[1][1] then
        return p[1][2]
    end
    local lo, hi = 1, #p
    while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        if p[mid][1] <= t then lo = mid else hi = mid - 1 end
    end
    return p[lo][2]
end

-- offset_of_local is the offset that turns wall-clock time l into an instant: that of the last
-- period whose wall clock starts at or before l. In a DST gap that is the period before the
-- change (the offset in force before it); in an overlap, the period after it — PostgreSQL's rule.
local function offset_of_local(p, l)
    local lo, hi = 1, #p
    while lo < hi do
        local mid = math.floor((lo + hi + 1) / 2)
        if p[mid][1] + p[mid][2] * 1000 <= l then lo = mid else hi = mid - 1 end
    end
    return p[lo][2]
end

local function to_local(z, t)
    if z == nil then return t end
    if type(z) == 'number' then return t + z * 1000 end
    return t + offset_at(z, t) * 1000
end

local function from_local(z, l)
    if z == nil then return l end
    if type(z) == 'number' then return l - z * 1000 end
    return l - offset_of_local(z, l) * 1000
end

-- Civil dates (proleptic Gregorian) from days since 1970-01-01 and back.
local function civil_from_days(z)
    z = z + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    local y = yoe + era * 400
    if m <= 2 then y = y + 1 end
    return y, m, d
end

local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = m > 2 and m - 3 or m + 9
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in_month(y, m)
    if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then
        return 29
    end
    return MONTH_DAYS[m]
end

-- add_months adds months to wall-clock time l, clamping the day to the month's end (PostgreSQL's
-- timestamp + interval).
local function add_months(l, months)
    local days = math.floor(l / DAY)
    local tod = l - days * DAY
    local y, m, d = civil_from_days(days)
    local mi = y * 12 + (m - 1) + months
    local ny = math.floor(mi / 12)
    local nm = mi - ny * 12 + 1
    return days_from_civil(ny, nm, math.min(d, days_in_month(ny, nm))) * DAY + tod
end

local function trunc(l, unit)
    if UNIT_MS[unit] then
        return math.floor(l / UNIT_MS[unit]) * UNIT_MS[unit]
    end
    local days = math.floor(l / DAY)
    if unit == 'day' then
        return days * DAY
    elseif unit == 'week' then
        return (days - (days + 3) % 7) * DAY -- 1970-01-01 was a Thursday; weeks start on Monday
    end
    local y, m = civil_from_days(days)
    if unit == 'month' then
        return days_from_civil(y, m, 1) * DAY
    end
    return days_from_civil(y, 1, 1) * DAY
end

local function default_anchor(t, unit, z)
    local l = to_local(z, t)
    if UNIT_MS[unit] then
        return t - (l - trunc(l, unit))
    end
    return from_local(z, trunc(l, unit))
end

local function boundary(anchor, n, unit, z, k)
    if UNIT_MS[unit] then
        return anchor + k * n * UNIT_MS[unit]
    end
    local la = to_local(z, anchor)
    if unit == 'day' then
        return from_local(z, la + k * n * DAY)
    elseif unit == 'week' then
        return from_local(z, la + k * n * 7 * DAY)
    elseif unit == 'month' then
        return from_local(z, add_months(la, k * n))
    end
    return from_local(z, add_months(la, 12 * k * n))
end

-- window_of returns k, window_start, next_reset_at of the window containing t.
local function window_of(anchor, n, unit, z, created, t)
    if t < anchor then
        return -1, created, anchor
    end
    local k
    if UNIT_MS[unit] then
        k = math.floor((t - anchor) / (n * UNIT_MS[unit]))
    else
        local la, lt = to_local(z, anchor), to_local(z, t)
        local da, dt = math.floor(la / DAY), math.floor(lt / DAY)
        if unit == 'day' then
            k = math.floor((dt - da) / n)
        elseif unit == 'week' then
            k = math.floor((dt - da) / (7 * n))
        else
            local ya, ma = civil_from_days(da)
            local yt, mt = civil_from_days(dt)
            if unit == 'month' then
                k = math.floor(((yt - ya) * 12 + mt - ma) / n)
            else
                k = math.floor((yt - ya) / n)
            end
        end
        k = math.max(k, 0)
    end
    -- At most a step or two each way; the bound is the loop's, not the input's.
    for _ = 1, 3 do
        if boundary(anchor, n, unit, z, k + 1) > t then break end
        k = k + 1
    end
    for _ = 1, 3 do
        if k <= 0 or boundary(anchor, n, unit, z, k) <= t then break end
        k = k - 1
    end
    return k, boundary(anchor, n, unit, z, k), boundary(anchor, n, unit, z, k + 1)
end

-- series_bucket returns the start and end of the bucket of a usage series of width every ('1 hour'
-- or '1 day') that holds instant t in zone z: the hour or the day of t's wall clock.
local function series_bucket(every, z, t)
    local unit = every == '1 hour' and 'hour' or 'day'
    local s = default_anchor(t, unit, z)
    return s, boundary(s, 1, unit, z, 1)
end

-- series_kept is how long a usage series of width every keeps its closed buckets, in
-- milliseconds: 7 days of hours, 90 days of days.
local function series_kept(every)
    return (every == '1 hour' and 168 or 2160) * 3600000
end
