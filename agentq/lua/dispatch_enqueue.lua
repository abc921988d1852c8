-- Add job ids to a dispatch lane. Run by agentq.dispatch.Dispatcher.enqueue, inside the
-- transaction that writes the jobs (agentq.store.JobStore.create).
--
-- KEYS[1] agentq:lanes (list: lanes in turn order), KEYS[2] agentq:lanes:set (the same, as a
--   set), KEYS[3] the lane (list of job ids), KEYS[4] the lane's meta hash.
-- ARGV[1] lane, ARGV[2] tenant, ARGV[3] the lane's cap of jobs in flight (0 = none), ARGV[4] '1'
--   if held (not dispatched until agentq.dispatch.Dispatcher.release_lane), ARGV[5] ttl seconds,
--   ARGV[6...] job ids (pushed 1000 at a time: unpack has a stack limit).
-- Returns how many ids were added.
--
-- Why atomic: the lane set and the turn list change together, so a lane is in the turn order
-- once however many submits add to it at once, and a dispatcher never sees a lane's jobs
-- without its meta.

for first = 6, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[3], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('HSET', KEYS[4], 'tenant', ARGV[2], 'cap', ARGV[3], 'held', ARGV[4])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return #ARGV - 5
