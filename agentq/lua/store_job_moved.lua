-- job_moved(jkey, id, old, new, now): what every status change must also do, in the same
-- script as the change. Not a script of its own: store_transition, store_claim and
-- store_requeue (agentq.store) each start with `--#include store_job_moved.lua`.
--
-- A job that ends, however it ends, drops its sealed token (nothing may run it any more), gives
-- back its dispatch slots (agentq.dispatch) and its place in its tenant's open-jobs quota
-- (agentq.quotas) and, if it has a webhook, is noted in agentq:notify; a job in a batch moves
-- the batch's per-status counters, and the batch's last job to end marks the batch ended (and
-- gives back its tenant's open-batch quota). A job's tenant is its owner fingerprint at
-- submission: the `tenant` field keeps it when `agentq reseal` moves the job to a new-key
-- fingerprint.
--
-- Arguments: jkey the job's hash, id the job id, old and new its status before and after the
-- change, now its time. The other keys are named from the job's fields (agentq:sealed:<id>,
-- agentq:inflight:t:<tenant>, agentq:inflight:l:<lane>, agentq:open:j:<tenant>, agentq:notify,
-- agentq:batch:<batch id>, agentq:batches:ended, agentq:open:b:<tenant>).
--
-- Why atomic: it runs inside the status change, so slots, quota places and batch counters move
-- exactly when the status does: once for a change applied once, never for a refused one (a late
-- or redelivered message), and no reader sees a job ended whose slot is still held.

local function job_moved(jkey, id, old, new, now)
  local f = redis.call('HMGET', jkey, 'owner', 'lane', 'batch_id', 'tenant')
  local ended = (new == 'succeeded' or new == 'failed' or new == 'cancelled')
  if ended then
    redis.call('DEL', 'agentq:sealed:' .. id)
    local tenant = f[4] or f[1]
    if tenant then
      redis.call('ZREM', 'agentq:inflight:t:' .. tenant, id)
      redis.call('ZREM', 'agentq:open:j:' .. tenant, id)
    end
    if f[2] then redis.call('ZREM', 'agentq:inflight:l:' .. f[2], id) end
    if redis.call('HEXISTS', jkey, 'webhook_url') == 1 then
      redis.call('ZADD', 'agentq:notify', now, id)
    end
  end
  if f[3] and old ~= new then
    local bkey = 'agentq:batch:' .. f[3]
    if redis.call('EXISTS', bkey) == 1 then
      redis.call('HINCRBY', bkey, old, -1)
      redis.call('HINCRBY', bkey, new, 1)
      if ended then
        local done = redis.call('HINCRBY', bkey, 'ended', 1)
        if done == tonumber(redis.call('HGET', bkey, 'total') or '-1') then
          redis.call('HSET', bkey, 'finished_at', now)
          redis.call('ZADD', 'agentq:batches:ended', now, f[3])
          local tenant = f[4] or f[1]
          if tenant then redis.call('ZREM', 'agentq:open:b:' .. tenant, f[3]) end
        end
      end
    end
  end
end
