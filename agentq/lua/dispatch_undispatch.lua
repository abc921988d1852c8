-- Give a dispatched job's slot back and put it at the front of its lane: its message could not
-- be sent. Run by agentq.dispatch.Dispatcher.undispatch.
--
-- KEYS[1] agentq:lanes, KEYS[2] agentq:lanes:set, KEYS[3] agentq:sent.
-- ARGV[1] job id, ARGV[2] the key prefix ('agentq:'); the job's hash, its lane and the in-flight
--   sets are named from it.
-- Returns 1 if the job went back, 0 if it has no lane or tenant (nothing to give back).
--
-- Why atomic: the slot is freed and the job put back in one step, so a dispatcher running
-- meanwhile sees it either in flight or waiting in its lane: never lost, never counted twice.

local jkey = ARGV[2] .. 'job:' .. ARGV[1]
local lane = redis.call('HGET', jkey, 'lane')
local f = redis.call('HMGET', jkey, 'tenant', 'owner')  -- as queued (see agentq.store)
local tenant = f[1] or f[2]
if not lane or not tenant then return 0 end
redis.call('ZREM', ARGV[2] .. 'inflight:t:' .. tenant, ARGV[1])
redis.call('ZREM', ARGV[2] .. 'inflight:l:' .. lane, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('LPUSH', ARGV[2] .. 'lane:' .. lane, ARGV[1])
if redis.call('SADD', KEYS[2], lane) == 1 then redis.call('LPUSH', KEYS[1], lane) end
return 1
