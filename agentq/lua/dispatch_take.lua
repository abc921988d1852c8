-- Hand out queued jobs, round-robin over the lanes, one job per lane per turn, within the caps
-- (see agentq.dispatch's docstring). Run by agentq.dispatch.Dispatcher.take: by the producer
-- after a submit, by a worker after a job ends and on each worker's maintenance tick.
--
-- KEYS[1] agentq:lanes, KEYS[2] agentq:lanes:set, KEYS[3] agentq:capacity (hash: worker ->
--   its job slots), KEYS[4] agentq:running, KEYS[5] agentq:sent, KEYS[6] agentq:tenants,
--   KEYS[7] agentq:epoch, KEYS[8] agentq:settle.
-- ARGV[1] now, ARGV[2] the tenant cap of jobs in flight, ARGV[3] the most jobs to hand out,
--   ARGV[4] headroom (messages beyond the live workers' slots), ARGV[5] the key prefix
--   ('agentq:'), ARGV[6] the worker heartbeat key prefix, ARGV[7] the settling window in
--   milliseconds. Lanes, their meta, the in-flight sets and job hashes are named from ARGV[5].
-- The server's epoch is read first (server_epoch.lua): so it is on record before any job is
--   sent, and a restart that takes the state back to any moment after is noticed.
-- Returns a flat list: job id, queue, job id, queue... (queue '' for the default).
--
-- Why atomic: counting free slots and taking jobs are one step, so dispatchers running at once
-- never overshoot a tenant's, a lane's or the broker's cap, and never hand out a job twice.

--#include server_epoch.lua
server_epoch(KEYS[7], KEYS[8], ARGV[1], ARGV[7])
local prefix = ARGV[5]
local slots = 0
local workers = redis.call('HGETALL', KEYS[3])
for i = 1, #workers, 2 do
  if redis.call('EXISTS', ARGV[6] .. workers[i]) == 1 then
    slots = slots + tonumber(workers[i + 1])
  else
    redis.call('HDEL', KEYS[3], workers[i])
  end
end
local free = slots + tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[4]) - redis.call('ZCARD', KEYS[5])
local budget = math.min(free, tonumber(ARGV[3]))
local tenant_cap = tonumber(ARGV[2])
local out = {}
local idle = 0
while budget > 0 do
  local lanes = redis.call('LLEN', KEYS[1])
  if lanes == 0 or idle >= lanes then break end
  local lane = redis.call('LPOP', KEYS[1])
  local meta = redis.call('HMGET', prefix .. 'lanemeta:' .. lane, 'tenant', 'cap', 'held')
  local tenant, cap = meta[1], tonumber(meta[2] or '0')
  local queue = prefix .. 'lane:' .. lane
  local took = false
  if tenant and meta[3] ~= '1' then
    local tkey = prefix .. 'inflight:t:' .. tenant
    local lkey = prefix .. 'inflight:l:' .. lane
    while true do
      if redis.call('ZCARD', tkey) >= tenant_cap then break end
      if cap > 0 and redis.call('ZCARD', lkey) >= cap then break end
      local id = redis.call('LPOP', queue)
      if not id then break end
      local jkey = prefix .. 'job:' .. id
      if redis.call('HGET', jkey, 'status') == 'queued' then
        redis.call('ZADD', tkey, ARGV[1], id)
        if cap > 0 then
          redis.call('ZADD', lkey, ARGV[1], id)
          redis.call('EXPIRE', lkey, 604800)
        end
        redis.call('ZADD', KEYS[5], ARGV[1], id)
        redis.call('SADD', KEYS[6], tenant)
        out[#out + 1] = id
        out[#out + 1] = redis.call('HGET', jkey, 'queue') or ''
        budget = budget - 1
        took = true
        break
      end
    end
  end
  if redis.call('LLEN', queue) > 0 and tenant then
    redis.call('RPUSH', KEYS[1], lane)
  else
    redis.call('SREM', KEYS[2], lane)
  end
  if took then idle = 0 else idle = idle + 1 end
end
return out
