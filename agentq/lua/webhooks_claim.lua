-- Claim due webhook deliveries under a lease: each one's score moves to the end of its lease,
-- so it comes due again (for any worker) if its claimant dies; its attempt count goes up by one.
-- Run by agentq.webhooks.DeliveryQueue.claim.
--
-- KEYS[1] agentq:webhooks:due (zset: 'job:<id>' / 'batch:<id>' -> when due), KEYS[2]
--   agentq:webhooks:attempts (hash: the same member -> attempts started).
-- ARGV[1] now, ARGV[2] the lease's end, ARGV[3] the most to claim.
-- Returns a flat list: member, attempt, member, attempt...
--
-- Why atomic: workers polling at once never claim the same delivery, and the lease and the
-- attempt count move with the claim.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HINCRBY', KEYS[2], id, 1)
end
return out
