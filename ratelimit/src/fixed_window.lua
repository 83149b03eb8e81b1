-- One rate limit decision over fixed windows, atomically (Redis runs a script alone).
-- KEYS[i]: a counter (one tenant, one limit, one clock-aligned window: its number is in the key);
-- ARGV[3i-2], ARGV[3i-1], ARGV[3i]: the hits asked of it, its maximum, and how long (ms) a new
-- counter is kept (until its window ends, and a little after for instances whose clocks lag).
-- All or nothing: when every counter can take its hits all are added, otherwise none is.
-- Returns {limited (0|1), count_1, count_2, ...}: counts after the decision.
local limited = 0
local counts = {}
for i = 1, #KEYS do
  local hits, max = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local count = 0
  if redis.call('PTTL', KEYS[i]) == -1 then
    redis.call('DEL', KEYS[i]) -- a counter without expiry is not ours to trust
  else
    count = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if count + hits > max then
    limited = 1
  end
  counts[i] = count
end
if limited == 0 then
  for i = 1, #KEYS do
    local hits = tonumber(ARGV[3 * i - 2])
    counts[i] = redis.call('INCRBY', KEYS[i], hits)
    if counts[i] == hits then
      redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
end
local out = { limited }
for i = 1, #KEYS do
  out[#out + 1] = counts[i]
end
return out
