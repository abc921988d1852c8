-- Move ended jobs noted by the status scripts (store_job_moved.lua) into the webhook due set.
-- Run by agentq.webhooks.DeliveryQueue.take_notified.
--
-- KEYS[1] agentq:notify (zset: ended job id -> when it ended), KEYS[2] agentq:webhooks:due.
-- ARGV[1] now, ARGV[2] the most ids to move.
-- Returns how many moved.
--
-- Why atomic: an id leaves one set and enters the other together, so no delivery is lost with a
-- worker that dies in between; NX keeps a delivery already due at its time.

local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], 'NX', ARGV[1], 'job:' .. id)
end
return #ids
