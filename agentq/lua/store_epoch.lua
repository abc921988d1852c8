-- Read the server's epoch. Run by agentq.store.JobStore.server_epoch, from each worker's
-- housekeeping (worker.maintenance) twice a second.
--
-- KEYS[1] agentq:epoch, KEYS[2] agentq:settle (see server_epoch.lua).
-- ARGV[1] now, ARGV[2] the settling window in milliseconds.
-- Returns {the server's run id, the milliseconds left of the settling window (negative: none)}.
--
-- Why atomic: the first script to see a new run id opens the settling window in the same step
-- (see server_epoch.lua), so no claim can slip in between.

--#include server_epoch.lua
local settle = server_epoch(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return {redis.call('HGET', KEYS[1], 'run_id') or '', settle}
