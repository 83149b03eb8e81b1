//! The Lua scripts of the Redis store. Each runs atomically on the server; every key it touches is
//! passed in `KEYS` (built by `TenantKeys`), never assembled inside the script. Each does a small,
//! bounded amount of work (a task's dozen counter fields, a rename, one reaping chunk), except the
//! one-time move of a legacy order list, which is as long as that list.

use std::sync::LazyLock;

use redis::Script;

/// Lua tail shared by the task writes: bumps the `writes` field of the counters hash `KEYS[c]`
/// and applies the (field, delta) pairs of `ARGV` from index `first`, dropping fields that reach 0.
macro_rules! apply_counters {
    ($c:literal, $first:literal) => {
        concat!(
            "redis.call('HINCRBY', KEYS[",
            $c,
            "], 'writes', 1)\n",
            "for i = ",
            $first,
            ", #ARGV, 2 do\n",
            "  if redis.call('HINCRBY', KEYS[",
            $c,
            "], ARGV[i], ARGV[i + 1]) == 0 then redis.call('HDEL', KEYS[",
            $c,
            "], ARGV[i]) end\n",
            "end\n"
        )
    };
}

/// `KEYS[1]` hash; `ARGV` field, expected JSON, new JSON. Sets the field only if it still holds the
/// expected JSON (a deleted record holds nothing, so it is never resurrected). Returns 1 or 0.
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// `KEYS` task records, project records, the project's counters; `ARGV` task id, expected task
/// JSON, new task JSON, project id, then (counter field, delta) pairs. Like [`COMPARE_AND_SET`],
/// and only while the project exists (a task of a deleted project is never written, so neither
/// it nor its counters come back); applies the counter deltas with the swap. Returns 1 or 0.
const UPDATE_TASK: &str = concat!(
    r"
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
",
    apply_counters!("3", "5"),
    "return 1\n"
);

/// `KEYS` project records, project order, sequence, the project's counters; `ARGV` project id,
/// project JSON, the cap on projects. Adds the project unless the tenant has `cap` projects
/// already; its counters start empty and marked current (`v`). Returns its sequence number, or -1
/// at the cap.
const CREATE_PROJECT: &str = r"
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], 'v', 1)
return seq
";

/// `KEYS` project records, task records, the project's task list, its counters; `ARGV` project id,
/// the project JSON the caller checked, task id, task JSON, the cap on tasks, then (counter field,
/// delta) pairs. Adds the task only if the project is unchanged (still there, still not archived)
/// and has fewer than `cap` tasks. Returns 1, 0 (project changed) or -1 (cap).
const ADD_TASK: &str = concat!(
    r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('LLEN', KEYS[3]) >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
",
    apply_counters!("4", "6"),
    "return 1\n"
);

/// `KEYS` project records, project order, the project's task list, the list its task ids move to
/// for reaping, its counters, the tenant's set of projects being reaped; `ARGV` project id, the
/// project JSON the caller checked. If the project is unchanged: removes its record, its place in
/// the order and its counters (UNLINK: freed off the main thread), and hands its task list to the reaper (a rename, O(1)). Returns the
/// number of its tasks, or -1 if the project changed.
const DETACH_PROJECT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
local n = redis.call('LLEN', KEYS[3])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('UNLINK', KEYS[5])
if n > 0 then
  redis.call('RENAME', KEYS[3], KEYS[4])
  redis.call('SADD', KEYS[6], ARGV[1])
end
return n
";

/// `KEYS` a deleted project's reaping list, task records, the set of projects being reaped; `ARGV`
/// project id, chunk size. Removes the records of the next `chunk` task ids and those ids; when
/// none are left, takes the project out of the set. Returns how many it removed.
const REAP_CHUNK: &str = r"
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids > 0 then
  redis.call('HDEL', KEYS[2], unpack(ids))
  redis.call('LTRIM', KEYS[1], #ids, -1)
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return #ids
";

/// `KEYS` legacy order list, project order, sequence, project records. Moves the ids of live
/// projects from the list kept by earlier versions into the sorted order: on the first move at
/// their list positions (so cursors handed out before stay valid), later (ids an older replica
/// added meanwhile) after the last sequence number. Returns how many it moved.
const MIGRATE_ORDER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local first = redis.call('EXISTS', KEYS[3]) == 0
local moved = 0
for i, id in ipairs(ids) do
  if redis.call('HEXISTS', KEYS[4], id) == 1 and not redis.call('ZSCORE', KEYS[2], id) then
    local score
    if first then score = i - 1 else score = redis.call('INCR', KEYS[3]) end
    redis.call('ZADD', KEYS[2], score, id)
    moved = moved + 1
  end
end
if first then redis.call('SET', KEYS[3], #ids) end
redis.call('DEL', KEYS[1])
return moved
";

/// `KEYS` the project's counters hash, the hash its rebuilt counters were written to; `ARGV` the
/// `writes` value seen before the tasks were counted, the number of fields written. Puts the rebuilt counters in place (a
/// rename) if no task write happened meanwhile, else drops them. Returns 1 (installed, or already
/// current) or 0 (retry).
const INSTALL_COUNTERS: &str = r"
if redis.call('HGET', KEYS[1], 'v') then
  redis.call('UNLINK', KEYS[2])
  return 1
end
if (redis.call('HGET', KEYS[1], 'writes') or '0') ~= ARGV[1]
  or redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[2]) then
  redis.call('UNLINK', KEYS[2])
  return 0
end
redis.call('HSET', KEYS[2], 'v', 1, 'writes', ARGV[1])
redis.call('PERSIST', KEYS[2])
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
";

macro_rules! script {
    ($name:ident, $source:ident) => {
        pub(super) fn $name() -> &'static Script {
            static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new($source));
            &SCRIPT
        }
    };
}

script!(compare_and_set, COMPARE_AND_SET);
script!(update_task, UPDATE_TASK);
script!(create_project, CREATE_PROJECT);
script!(add_task, ADD_TASK);
script!(detach_project, DETACH_PROJECT);
script!(reap_chunk, REAP_CHUNK);
script!(migrate_order, MIGRATE_ORDER);
script!(install_counters, INSTALL_COUNTERS);
