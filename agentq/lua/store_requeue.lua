-- Put a running job back in the queue for a later attempt (a retry, or a run lost with its
-- worker). Run by agentq.store.JobStore.requeue.
--
-- KEYS[1] the job's hash, KEYS[2] agentq:running, KEYS[3] agentq:delayed.
-- ARGV[1] ttl seconds, ARGV[2] the owning worker or '' for any, ARGV[3] when the next attempt is
--   due, ARGV[4] job id, ARGV[5] '1' to count a lost run, ARGV[6] poison_after (lost runs that
--   fail the job), ARGV[7] now, ARGV[8] the error JSON of a poisoned job.
-- Returns 'queued', 'poisoned' (failed: its runs were lost too often) or 'skipped' (not
--   running, or not the given worker's).
--
-- Why atomic: only a job still running (and still the given worker's) goes back, so a worker
-- whose job was taken over or ended meanwhile changes nothing, and a lost run is counted once.

--#include store_job_moved.lua
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'skipped' end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 'skipped' end
redis.call('ZREM', KEYS[2], ARGV[4])
if ARGV[5] == '1' then
  local lost = redis.call('HINCRBY', KEYS[1], 'lost_runs', 1)
  if lost >= tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[7], 'error', ARGV[8])
    job_moved(KEYS[1], ARGV[4], 'running', 'failed', ARGV[7])
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 'poisoned'
  end
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'next_attempt_at', ARGV[3])
job_moved(KEYS[1], ARGV[4], 'running', 'queued', ARGV[7])
redis.call('HDEL', KEYS[1], 'worker')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 'queued'
