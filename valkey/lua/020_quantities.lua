----------------------------------------------------------------------------------------------
-- Quantities: validating limits and deltas objects, and arithmetic on them.

local function is_dimension(k)
    return type(k) == 'string' and #k >= 1 and #k <= 64 and not k:find('[^%w_%.:%-]')
end

local function is_quantity(v)
    return is_int(v) and v >= 0 and v <= MAX_QTY
end

local function quantities(arg, obj, required)
    if type(obj) ~= 'table' then
        invalid_argument(arg, 'must be a JSON object of dimension -> quantity')
    end
    local out, n = {}, 0
    for k, v in pairs(obj) do
        n = n + 1
        if n > 32 then
            invalid_argument(arg, 'at most 32 dimensions')
        end
        if type(k) ~= 'string' then
            invalid_argument(arg, 'must be a JSON object of dimension -> quantity')
        end
        if not is_dimension(k) then
            invalid_argument(arg, 'dimension name ' .. encode(k) .. ' must be 1..64 bytes of [A-Za-z0-9_.:-]')
        end
        if not is_quantity(v) then
            invalid_argument(arg, encode(k) .. ' must be an integer 0..9007199254740991')
        end
        out[k] = v + 0
    end
    if required and n == 0 then
        invalid_argument(arg, 'must have at least one dimension')
    end
    return out
end

local function plus(a, b)
    local out = {}
    for k, v in pairs(a) do out[k] = v end
    for k, v in pairs(b) do out[k] = (out[k] or 0) + v end
    for k, v in pairs(out) do
        if v == 0 then out[k] = nil end
    end
    return out
end

-- add_usage adds the deltas d in dimensions dims (each once) to usage, in place, keeping only
-- non-zero totals (SQL: add_usage), and returns it.
local function add_usage(usage, dims, d)
    for _, dim in ipairs(dims) do
        local new = (usage[dim] or 0) + d[dim]
        if new ~= 0 then
            usage[dim] = new
        end
    end
    return usage
end

-- difference subtracts b from a per dimension, signed, keeping only non-zero results (a usage
-- series bucket's usage, which a release can make negative).
local function difference(a, b)
    local out = {}
    for k, v in pairs(a) do out[k] = v end
    for k, v in pairs(b) do out[k] = (out[k] or 0) - v end
    for k, v in pairs(out) do
        if v == 0 then out[k] = nil end
    end
    return out
end

local function minus(a, b)
    local out = {}
    for k, v in pairs(a) do
        local r = v - (b[k] or 0)
        if r > 0 then out[k] = r end
    end
    return out
end

local function nonzero(a)
    local out = {}
    for k, v in pairs(a) do
        if v ~= 0 then out[k] = v end
    end
    return out
end

local function same_quantities(a, b)
    for k, v in pairs(a) do
        if b[k] ~= v then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

-- room is the largest total a budget takes in a dimension without any breach: its hard limit h and
-- soft limit s there (nil: none), and MAX_QTY (SQL: spendcap_internal.room). fast_report stays on
-- it only while every new total fits; evaluate tests the same three bounds one by one to name the
-- breach.
local function room(h, s)
    return math.min(MAX_QTY, h or MAX_QTY, s or MAX_QTY)
end

-- share is the part of hard limit h that used (usage plus reserved) takes, in thousandths rounded
-- down, at most 999999 (SQL: share): a limit of 0 is full (1000) while nothing is used, past full
-- once something is. Divided then multiplied, as PostgreSQL computes it in doubles.
local function share(used, h)
    if h > 0 then
        return math.min(math.floor(used / h * 1000), 999999)
    end
    return used > 0 and 999999 or 1000
end

-- utilisation is the highest share of any hard limit (SQL: utilisation), nil without a hard
-- limit: the hash's ut field, kept by store.
local function utilisation(hard_limits, usage, reserved)
    local u
    for dim, h in pairs(hard_limits) do
        local s = share((usage[dim] or 0) + (reserved[dim] or 0), h)
        if u == nil or s > u then
            u = s
        end
    end
    return u
end

-- raised_utilisation is stored utilisation u after usage grew in one dimension only, to new with
-- reserved r under hard limit h (nil: none), as the fast path charges it (SQL:
-- raised_utilisation, which loops over the charged dimensions).
local function raised_utilisation(u, new, r, h)
    if h == nil then
        return u
    end
    local s = share(new + (r or 0), h)
    if u == nil or s > u then
        return s
    end
    return u
end

-- near_permille is the utilisation from which a budget with alert percents ap (ascending, or nil)
-- is near a limit: its lowest alert percent, or 80%, whichever comes first (SQL: near_permille).
local function near_permille(ap)
    return 10 * math.min(80, ap and ap[1] or 80)
end
