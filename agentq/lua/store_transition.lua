-- Change a job's status if it is in an allowed one (and, if an owner is given, is run by that
-- worker). Run by agentq.store.JobStore: finish, cancel, cancel_many.
--
-- KEYS[1] the job's hash, KEYS[2] agentq:running, KEYS[3] agentq:delayed, KEYS[4] the job's
--   sealed token (job_moved deletes it, by name, when the job ends), KEYS[5] agentq:sent.
-- ARGV[1] ttl seconds, ARGV[2] allowed statuses (comma-separated), ARGV[3] the owning worker or
--   '' for any (checked while the job runs: a job that reads `queued` has no other runner, and
--   its worker may finish it, as after a Redis restart that lost the claim), ARGV[4] job id,
--   ARGV[5] '1' if the new status is terminal (drop the job from the running, delayed and sent
--   indexes), ARGV[6] the new status, ARGV[7] now, ARGV[8...]
--   field/value pairs to set (the new status among them).
-- Returns {previous status or false if the job is gone, 1 if applied else 0}.
--
-- Why atomic: the check and the change are one step, so a late or redelivered message can
-- never move a finished job back or finish it twice, and when two workers finish one job only
-- its owner's result applies.

--#include store_job_moved.lua
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {false, 0} end
local allowed = false
for status in string.gmatch(ARGV[2], '[^,]+') do
  if status == current then allowed = true end
end
if not allowed then return {current, 0} end
if ARGV[3] ~= '' and current == 'running' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return {current, 0}
end
if #ARGV > 7 then redis.call('HSET', KEYS[1], unpack(ARGV, 8)) end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
job_moved(KEYS[1], ARGV[4], current, ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return {current, 1}
