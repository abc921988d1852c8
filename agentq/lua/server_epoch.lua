-- server_epoch(epoch_key, settle_key, now, settle_ms): notice, from inside a script, that Redis
-- restarted or failed over since agentq last looked, and open a settling window when it did.
-- Not a script of its own: store_claim, store_epoch (agentq.store.JobStore) and dispatch_take
-- (agentq.dispatch) include it with `--#include server_epoch.lua`.
--
-- epoch_key (agentq:epoch) holds the run id of the server that agentq last saw. It is written to
-- the append-only file like every key, so after a restart (or a failover, whose new primary has
-- a run id of its own) it names the server before. Then the state may have gone back in time: a
-- job whose claim was lost reads `queued` while a live worker still runs it. For settle_ms
-- settle_key (agentq:settle) exists, and store_claim refuses to claim a queued job or take over
-- a running one, so that every worker first puts back what it runs (store_reassert, from its
-- housekeeping, which reads the epoch twice a second).
--
-- Returns the milliseconds left of the settling window (a negative number when there is none).
-- INFO is read-only and allowed in scripts; the effects are replicated, not the script.
--
-- Why atomic: the first script to see a new run id opens the window in the same step as it
-- records the id, so no claim can slip in between.

local function server_epoch(epoch_key, settle_key, now, settle_ms)
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local known = redis.call('HGET', epoch_key, 'run_id')
  if run_id and known ~= run_id then
    redis.call('HSET', epoch_key, 'run_id', run_id, 'since', now)
    if known then redis.call('SET', settle_key, run_id, 'PX', settle_ms) end
  end
  return redis.call('PTTL', settle_key)
end
