----------------------------------------------------------------------------------------------
-- set_parent (docs/sql-api.md#set_parent).

-- set_parent: keys are the budget, the new parent's chain (nearest first) and, last, the old
-- parent.
function api.set_parent(keys, a)
    local id = a.budget_id
    local key = budget_key(keys, id)
    local b, t = lock_budget(key, id, instant(a))
    refuse_children(b, 'only a budget without children moves')
    local new = a.parent_id ~= nil and lock_parent(keys, 2, a.parent_id, id) or nil
    if b.parent_id ~= a.parent_id then
        if b.parent_id ~= nil then
            local old = parent_of(keys, #keys, b)
            old.child_count = old.child_count - 1
            queue_store(b, old)
            queue(b, 'ZREM', subkey(old._key, 'k'), id)
        end
        if new then
            new.child_count = (new.child_count or 0) + 1
            queue_store(b, new)
            queue(b, 'ZADD', subkey(new._key, 'k'), 0, id)
        end
    end
    b.parent_id = a.parent_id
    b.updated_at = math.max(b.updated_at, t)
    save(b)
    return status_row(b, t)
end
