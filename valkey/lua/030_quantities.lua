----------------------------------------------------------------------------------------------
-- Quantities: validating limits and deltas objects, and arithmetic on them.

local function quantities(arg, obj, required)
    if type(obj) ~= 'table' then
        invalid(arg, 'must be a JSON object of dimension -> quantity')
    end
    local out, n = {}, 0
    for k, v in pairs(obj) do
        n = n + 1
        if n > 32 then
            invalid(arg, 'at most 32 dimensions')
        end
        if type(k) ~= 'string' then
            invalid(arg, 'must be a JSON object of dimension -> quantity')
        end
        if not valid_dim(k) then
            invalid(arg, 'dimension name ' .. encode(k) .. ' must be 1..64 bytes of [A-Za-z0-9_.:-]')
        end
        if not valid_qty(v) then
            invalid(arg, encode(k) .. ' must be an integer 0..9007199254740991')
        end
        out[k] = v + 0
    end
    if required and n == 0 then
        invalid(arg, 'must have at least one dimension')
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

-- room is the largest total a budget takes in a dimension without any breach: its hard limit h
-- and soft limit s there (nil: none), and MAX (SQL: spendcap_internal.room). fast_report stays on
-- it only while every new total fits; evaluate tests the same three bounds one by one to name the
-- breach.
local function room(h, s)
    return math.min(MAX, h or MAX, s or MAX)
end
