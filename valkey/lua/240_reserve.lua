----------------------------------------------------------------------------------------------
-- reserve (docs/sql-api.md#reserve).

function api.reserve(keys, a)
    return admit('reserve', keys, a)
end
