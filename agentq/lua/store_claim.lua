-- Take a job for a run. Run by agentq.store.JobStore.claim and claim_and_load, when a worker
-- receives the job's message.
--
-- A running job whose worker is alive is 'busy' (a duplicate delivery); one whose worker died is
-- taken over, unless its runs were lost too often ('poisoned': failed, not run again). A queued
-- job whose retry is not yet due is 'early' (its delayed entry will send it).
--
-- KEYS[1] the job's hash, KEYS[2] agentq:running, KEYS[3] agentq:delayed, KEYS[4] agentq:sent,
--   KEYS[5] the job's sealed token, KEYS[6] agentq:epoch, KEYS[7] agentq:settle.
-- ARGV[1] ttl seconds, ARGV[2] this worker's name, ARGV[3] the worker heartbeat key prefix,
--   ARGV[4] now, ARGV[5] poison_after (lost runs that fail the job), ARGV[6] job id,
--   ARGV[7] the error JSON of a poisoned job, ARGV[8] '1' to return the job and its token too,
--   ARGV[9] the settling window after a restart or failover, in milliseconds.
-- Returns 'missing', 'terminal', 'busy', 'early', 'poisoned', 'settling', 'mine' or 'claimed';
--   with ARGV[8] '1' a claim (and 'mine') returns {'claimed' (or 'mine'), the job's hash as a
--   flat list, its sealed token}. 'mine': the job runs, claimed by this same worker name.
--   'settling': Redis restarted or failed over moments ago and its state may have gone back in
--   time (see server_epoch.lua); claim again when the window has passed.
--
-- Why atomic: one job's message can reach two workers at once (a redelivery, a resend by the
-- lost-message lease); exactly one of them claims it, and a dead worker's job is taken over,
-- and its lost run counted, once.

--#include store_job_moved.lua
--#include server_epoch.lua
local settling = server_epoch(KEYS[6], KEYS[7], ARGV[4], ARGV[9]) > 0
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return 'terminal'
end
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'worker')
  if owner == ARGV[2] then
    -- This worker's: it runs the job, or its own claim was applied and the answer lost (Redis
    -- went away in between, and the claim was sent again). Only the worker can tell.
    if ARGV[8] == '1' then
      return {'mine', redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[5])}
    end
    return 'mine'
  end
  if owner and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return 'busy' end
  if settling then return 'settling' end
  local lost = redis.call('HINCRBY', KEYS[1], 'lost_runs', 1)
  if lost >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[4], 'error', ARGV[7])
    redis.call('ZREM', KEYS[2], ARGV[6])
    redis.call('ZREM', KEYS[3], ARGV[6])
    job_moved(KEYS[1], ARGV[6], 'running', 'failed', ARGV[4])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 'poisoned'
  end
else
  if settling then return 'settling' end
  local due = redis.call('HGET', KEYS[1], 'next_attempt_at')
  if due and tonumber(due) > tonumber(ARGV[4]) + 0.5 then return 'early' end
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'attempt_started_at', ARGV[4])
job_moved(KEYS[1], ARGV[6], status, 'running', ARGV[4])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
if ARGV[8] == '1' then
  return {'claimed', redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[5])}
end
return 'claimed'
