-- Take the job ids whose next attempt is due. Run by agentq.store.JobStore.pop_due, from every
-- worker's maintenance tick.
--
-- KEYS[1] agentq:delayed (zset: job id -> when its next attempt is due).
-- ARGV[1] now, ARGV[2] the most ids to take.
-- Returns the ids taken.
--
-- Why atomic: every worker pops; reading and removing in one step hands each due id to one of
-- them only.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZREM', KEYS[1], id) end
return due
