-- Take a lease if fewer than the limit are held. Run by agentq.ratelimit.Semaphore.acquire
-- (the model slots shared by every worker); a lease ends with release or at its expiry.
--
-- KEYS[1] the semaphore (zset: holder -> when its lease expires).
-- ARGV[1] the limit, ARGV[2] the holder's id, ARGV[3] the lease, seconds.
-- Returns 1 if the lease was taken, else 0. Redis's TIME is the clock.
--
-- Why atomic: dropping expired leases, counting and adding are one step, so processes asking
-- at once never hold more than the limit.

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
  return 1
end
return 0
