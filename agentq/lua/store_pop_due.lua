-- Take the job ids whose next attempt is due. Run by agentq.store.JobStore.pop_due, from every
-- worker's maintenance tick.
--
-- KEYS[1] agentq:delayed (zset: job id -> when its next attempt is due), KEYS[2] agentq:sent.
-- ARGV[1] now, ARGV[2] the most ids to take.
-- Returns the ids taken; each is noted as sent (its message is about to be).
--
-- Why atomic: every worker pops; reading and removing in one step hands each due id to one of
-- them only, and a taken id is in agentq:sent from that step on, so a crash before its message
-- is sent leaves it where the lost-message check looks (worker.maintenance).

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[1], id)
end
return due
