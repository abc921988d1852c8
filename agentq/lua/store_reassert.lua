-- Put back a job that this worker is running, after a Redis restart or failover took its
-- record back in time. Run by agentq.store.JobStore.reassert, from worker.maintenance, for each
-- job the worker runs when it notices a new server epoch (see server_epoch.lua), inside the
-- settling window that keeps other workers from claiming it meanwhile.
--
-- KEYS[1] the job's hash, KEYS[2] agentq:running, KEYS[3] agentq:delayed, KEYS[4] agentq:sent.
-- ARGV[1] this worker's name, ARGV[2] now, ARGV[3] job id, ARGV[4] ttl seconds, ARGV[5] the
--   attempt this worker runs, ARGV[6] the key prefix ('agentq:'); the in-flight sets, the lane's
--   meta and the tenants set are named from it.
-- Returns 'reasserted' (it read `queued`: it is running here again), 'missing' (its record is
--   gone: its submit was lost), or the status it has (`running`, or an ended one: left as is).
--
-- Why atomic: the check and the change are one step with the job's slots and batch counters
-- (job_moved), exactly like a claim.

--#include store_job_moved.lua
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1], 'attempt_started_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[5])
end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
-- In flight again: the dispatch slots it held may have gone back with its record.
local f = redis.call('HMGET', KEYS[1], 'tenant', 'owner', 'lane')
local tenant = f[1] or f[2]
if tenant then
  redis.call('ZADD', ARGV[6] .. 'inflight:t:' .. tenant, 'NX', ARGV[2], ARGV[3])
  redis.call('SADD', ARGV[6] .. 'tenants', tenant)
end
if f[3] and tonumber(redis.call('HGET', ARGV[6] .. 'lanemeta:' .. f[3], 'cap') or '0') > 0 then
  redis.call('ZADD', ARGV[6] .. 'inflight:l:' .. f[3], 'NX', ARGV[2], ARGV[3])
end
job_moved(KEYS[1], ARGV[3], 'queued', 'running', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 'reasserted'
