----------------------------------------------------------------------------------------------
-- record_spend (docs/sql-api.md#record_spend).

function api.record_spend(keys, a)
    return admit('record_spend', keys, a)
end
