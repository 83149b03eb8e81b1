//! The Lua scripts of the Redis store. Each runs atomically on the server; every key it touches is
//! passed in `KEYS` (built by `TenantKeys`), never assembled inside the script.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` hash; `ARGV` field, expected JSON, new JSON. Sets the field only if it still holds the
/// expected JSON (a deleted record holds nothing, so it is never resurrected). Returns 1 or 0.
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// `KEYS` project records, task records, the project's task list; `ARGV` project id, the project
/// JSON the caller checked, task id, task JSON. Adds the task only if the project is unchanged
/// (still there, still not archived). Returns 1 or 0.
const ADD_TASK: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
";

/// `KEYS` project records, task records, the project's task list; `ARGV` project id, the project
/// JSON the caller checked. Deletes the project record, its task records and its task list if the
/// project is unchanged; the id stays in the tenant's project order as a tombstone so cursors keep
/// their positions. Returns the number of tasks deleted, or -1 if the project changed.
const DELETE_PROJECT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return -1
end
local ids = redis.call('LRANGE', KEYS[3], 0, -1)
for i = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[1], ARGV[1])
return #ids
";

static COMPARE_AND_SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COMPARE_AND_SET));
static ADD_TASK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_TASK));
static DELETE_PROJECT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_PROJECT));

pub(super) fn compare_and_set() -> &'static Script {
    &COMPARE_AND_SET_SCRIPT
}

pub(super) fn add_task() -> &'static Script {
    &ADD_TASK_SCRIPT
}

pub(super) fn delete_project() -> &'static Script {
    &DELETE_PROJECT_SCRIPT
}
