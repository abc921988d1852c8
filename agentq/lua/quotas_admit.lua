-- Check a tenant's submit quotas and count the submit. Run by agentq.quotas.Quotas.admit before
-- a submit writes anything.
--
-- KEYS[1] the tenant's open jobs (zset), KEYS[2] its open batches (zset), KEYS[3] its submits in
--   this minute (counter).
-- ARGV[1] now (not read), ARGV[2] the oldest open entry kept (older ones expired with their
--   job), ARGV[3] jobs this submit adds, ARGV[4] '1' if it is a batch, ARGV[5] max open jobs,
--   ARGV[6] max open batches, ARGV[7] max submits per minute (0: no limit for any of the three),
--   ARGV[8] seconds left in the minute.
-- Returns {'ok'}, or {the limit hit ('submits', 'jobs' or 'batches'), retry-after seconds}.
--
-- Why atomic: the per-minute count is checked and counted in one step, so submits at once never
-- both take its last place. The open jobs and batches are recorded later, by the submit's own
-- transaction (Quotas.opened): submits racing each other can pass those two limits together.

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local max_jobs, max_batches, max_rate = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if max_rate > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= max_rate then
  return {'submits', ARGV[8]}
end
if max_jobs > 0 and redis.call('ZCARD', KEYS[1]) + tonumber(ARGV[3]) > max_jobs then
  return {'jobs', '30'}
end
if ARGV[4] == '1' and max_batches > 0 and redis.call('ZCARD', KEYS[2]) >= max_batches then
  return {'batches', '30'}
end
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 120)
return {'ok'}
