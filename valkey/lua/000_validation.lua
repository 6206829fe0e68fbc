----------------------------------------------------------------------------------------------
-- Validation (docs/semantics.md#arguments; SQL: 000_validation.sql), in the same order as the SQL
-- functions.

local function invalid_argument(arg, problem)
    fail('SC002', arg .. ': ' .. problem)
end

local function integral(tok)
    local int, frac, exp = tok:match('^-?(%d+)%.?(%d*)[eE]?([-+]?%d*)$')
    if not int then
        return false
    end
    local digits = int .. frac
    local point = #int + (tonumber(exp) or 0)
    return not digits:sub(math.max(point, 0) + 1):find('[1-9]')
end

-- inexact_number finds a number with a fraction that cjson's doubles round away
-- (4503599627370496.5, 1.0000000000000001 decode as integers), which SQL's exact numerics refuse.
-- It scans the text outside strings and answers the top-level argument holding the number, and the
-- number.
local function inexact_number(text)
    local i, n, depth, top = 1, #text, 0, nil
    while i <= n do
        local c = text:byte(i)
        if c == 34 then -- a string: skip past its closing quote
            local j = i + 1
            while true do
                local q = text:find('["\\]', j)
                if not q then
                    return nil
                end
                if text:byte(q) == 92 then
                    j = q + 2
                else
                    j = q
                    break
                end
            end
            if depth == 1 and text:find('^%s*:', j + 1) then
                top = text:sub(i + 1, j - 1)
            end
            i = j + 1
        elseif c == 123 or c == 91 then
            depth = depth + 1
            i = i + 1
        elseif c == 125 or c == 93 then
            depth = depth - 1
            i = i + 1
        elseif c == 45 or (c >= 48 and c <= 57) then
            local s, e = text:find('^-?%d*%.?%d*[eE]?[-+]?%d*', i)
            local tok = text:sub(s, e)
            local v = tonumber(tok)
            if v and v == math.floor(v) and tok:find('[%.eE]') and not integral(tok) then
                return top or 'arguments', tok
            end
            i = e + 1
        else
            i = i + 1
        end
    end
    return nil
end

local function decode_args(argv)
    local ok, a = pcall(cjson.decode, argv[1] or '')
    if not ok or type(a) ~= 'table' then
        invalid_argument('arguments', 'must be one JSON object')
    end
    -- Only a number with a '.' or a negative exponent can have a fraction: most calls skip the
    -- scan, and the pattern (a tenth of the call when it ran on every one) runs only when a plain
    -- search finds one of those.
    local text = argv[1]
    if (text:find('.', 1, true) or text:find('e-', 1, true) or text:find('E-', 1, true)) and text:find('%d[%.eE]') then
        local arg, tok = inexact_number(argv[1])
        if arg then
            invalid_argument(arg, tok .. ' must be an integer')
        end
    end
    for k, v in pairs(a) do
        if v == NULL then
            a[k] = nil -- null means "default", as in SQL
        end
    end
    return a
end

-- quick_report_args decodes report_usage's arguments (and a batch item's) when they are the common
-- call exactly as the Go client writes it, {"budget_id":"<id>","deltas":{"<dim>":<n>,...}}: an id
-- of printable ASCII that needs no escape, dimension names of [A-Za-z0-9_.:-], integers without
-- sign, fraction or exponent (leading zeros read as cjson reads them: 007 is 7), and no white
-- space. It answers the table decode_args makes of that text, in a third of its time, and nil for
-- any other text (decode_args decides).
local function quick_report_args(text)
    if type(text) ~= 'string' then
        return nil
    end
    -- The id's class is 0x21-0x7E but '"' and '\': ']-~', '!' and '#-['. (A '%' escape does not
    -- end a range in a Lua set; a ']' right after '[' is a character.) One dimension, the most
    -- common call, in one match; a second dimension fails it (a name has no '"' or ',') and the
    -- loop below reads them all.
    local id, body, q = text:match('^{"budget_id":"([]-~!#-[]+)","deltas":{"([%w_%.:%-]+)":(%d+)}}$')
    if id then
        return { budget_id = id, deltas = { [body] = tonumber(q) } }
    end
    id, body = text:match('^{"budget_id":"([]-~!#-[]+)","deltas":{(.+)}}$')
    if not id then
        return nil
    end
    local d, pos, n = {}, 1, #body
    while true do
        local _, e, dim, q = body:find('^"([%w_%.:%-]+)":(%d+)', pos)
        if not e then
            return nil
        end
        d[dim] = tonumber(q)
        if e == n then
            return { budget_id = id, deltas = d }
        end
        if body:byte(e + 1) ~= 44 then -- ','
            return nil
        end
        pos = e + 2
    end
end

-- report_usage_args are report_usage's arguments: the common call's by quick_report_args, the
-- rest by decode_args.
local function report_usage_args(argv)
    return quick_report_args(argv[1]) or decode_args(argv)
end

-- is_id, is_dimension and is_quantity are the rules of docs/semantics.md#arguments as tests;
-- check_id, quantities and fast_report share them.
local function is_id(v)
    return type(v) == 'string' and #v >= 1 and #v <= 128 and not v:find('[^!-z|~]')
end

local function is_int(v)
    return type(v) == 'number' and v == math.floor(v) and v > -1e300 and v < 1e300
end

local function in_time_range(v)
    return is_int(v) and v >= 0 and v < TIME_MAX
end

-- bounded is integer argument v, named arg, checked to lie in min..max (SQL: bounded).
local function bounded(arg, v, min, max)
    if not is_int(v) or v < min or v > max then
        invalid_argument(arg, 'must be ' .. min .. '..' .. max)
    end
    return v
end

local function check_id(arg, v)
    if v == nil then
        invalid_argument(arg, 'is required')
    end
    if not is_id(v) then
        invalid_argument(arg, 'must be 1..128 bytes of printable ASCII (0x21-0x7E) other than { and }')
    end
end

-- base_key checks the id named arg and that the call's key is its base key (base_of).
local function base_key(keys, arg, prefix, id)
    check_id(arg, id)
    local want = base_of(prefix, id)
    if keys[1] ~= want then
        invalid_argument(arg, 'the key must be ' .. want)
    end
    return want
end

local function budget_key(keys, id)
    return base_key(keys, 'budget_id', 'sc:', id)
end

-- series_every_of reads a usage_series argument named arg (SQL: series_every_of): "1 hour" or
-- "1 day" in the syntax of a reset period, returned in that canonical form; off_ok also takes
-- "off" (set_limits). nil stays nil.
local function series_every_of(arg, v, off_ok)
    if v == nil then
        return nil
    end
    local bad = off_ok and 'must be "1 hour", "1 day" or "off"' or 'must be "1 hour" or "1 day"'
    if type(v) ~= 'string' then
        invalid_argument(arg, bad)
    end
    local l = v:lower()
    if off_ok and l:match('^%s*off%s*$') then
        return 'off'
    end
    local unit = l:match('^%s*1%s+(%a+)%s*$')
    if unit == 'hours' or unit == 'days' then
        unit = unit:sub(1, -2)
    end
    if unit ~= 'hour' and unit ~= 'day' then
        invalid_argument(arg, bad)
    end
    return '1 ' .. unit
end

local function parse_period(p)
    local bad = 'must be "<n> <unit>" with n in 1..10000 and unit one of second, minute, hour, day, week, month, year'
    if type(p) ~= 'string' then
        invalid_argument('reset_every', bad)
    end
    local num, unit = p:lower():match('^%s*(%d%d?%d?%d?%d?)%s+(%a+)%s*$')
    if unit and not UNIT_MS[unit] and not CALENDAR[unit] and unit:sub(-1) == 's' then
        unit = unit:sub(1, -2)
    end
    local n = tonumber(num)
    if not unit or (not UNIT_MS[unit] and not CALENDAR[unit]) or n < 1 or n > 10000 then
        invalid_argument('reset_every', bad)
    end
    return n, unit, n .. ' ' .. unit .. (n == 1 and '' or 's')
end

-- time_problem is the one rule for a call's at_ms (docs/semantics.md#time): what is wrong with it,
-- or nil. An instant later than the server clock plus FUTURE_SKEW would let any caller open the
-- next window early or end another holder's lease, so it needs ALLOW_REPLAY; earlier ones are
-- fine where the past cannot help (usage never lands in a window before the budget's current one),
-- but not with past_ok = false (acquire_quota).
local function time_problem(at, past_ok)
    if not in_time_range(at) then
        return 'must be an integer of Unix milliseconds from 1970-01-01 to 9999-12-31 UTC'
    end
    if not ALLOW_REPLAY and at > now_ms() + FUTURE_SKEW then
        return 'is later than the server clock: only a library loaded with replays allowed takes a future at_ms'
    end
    if not ALLOW_REPLAY and past_ok == false and at < now_ms() - FUTURE_SKEW then
        return 'is earlier than the server clock: only a library loaded with replays allowed acquires a quota in the past'
    end
    return nil
end

-- instant is the call's instant: at_ms, checked by time_problem, or the server clock. acquire_quota
-- passes past_ok = false: an entry or lease recorded in the past would count against nobody.
local function instant(a, past_ok)
    local at = a.at_ms
    if at == nil then
        return now_ms()
    end
    local problem = time_problem(at, past_ok)
    if problem then
        invalid_argument('at_ms', problem)
    end
    return at
end
