-- Move a waiting job to the newest sealing key (`agentq reseal`, agentq.store.JobStore
-- .reseal_waiting): its sealed token (re-bound to the new owner fingerprint) and, if the
-- fingerprint changed, its owner field, its place in the owner index, and its batch's owner and
-- place in the batches' owner index (agentq.batches). The dispatch tenant stays the one it was
-- queued under (`tenant`). A job that has ended or is gone only loses its sealed token.
--
-- KEYS[1] the job's hash, KEYS[2] its sealed token.
-- ARGV[1] the sealed token as read, ARGV[2] the new sealed token, ARGV[3] the owner as read,
--   ARGV[4] the new owner, ARGV[5] job id, ARGV[6] the key prefix ('agentq:'), ARGV[7] ttl
--   seconds. (For a job read as ended, ARGV[2] to ARGV[4] are ''.)
-- Returns 'resealed', 'moved' (the owner changed too), 'dropped' (the job had ended or is gone:
--   its sealed token is deleted) or 'changed' (the token or owner changed since it was read:
--   nothing done).
--
-- Why atomic: the token is opened and sealed again in Python, between the read and this write;
-- the write is a compare-and-set, applied only if neither the token nor the owner changed since,
-- so a job that ends or is resealed meanwhile is never given a stale token, and the owner field
-- and both owner indexes move together.

if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'changed' end
local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'created_at', 'batch_id')
if not f[1] or f[1] == 'succeeded' or f[1] == 'failed' or f[1] == 'cancelled' then
  redis.call('DEL', KEYS[2])
  return 'dropped'
end
if f[2] ~= ARGV[3] then return 'changed' end
redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
local old, new, id, p, ttl = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if old == new then return 'resealed' end
redis.call('HSETNX', KEYS[1], 'tenant', old)
redis.call('HSET', KEYS[1], 'owner', new)
redis.call('ZREM', p .. 'owner:' .. old, id)
redis.call('ZADD', p .. 'owner:' .. new, f[3], id)
redis.call('EXPIRE', p .. 'owner:' .. new, ttl)
if f[4] then
  local bkey = p .. 'batch:' .. f[4]
  if redis.call('HGET', bkey, 'owner') == old then
    local created = redis.call('HGET', bkey, 'created_at')
    redis.call('HSET', bkey, 'owner', new)
    redis.call('ZREM', p .. 'owner:' .. old .. ':batches', f[4])
    redis.call('ZADD', p .. 'owner:' .. new .. ':batches', created, f[4])
    redis.call('EXPIRE', p .. 'owner:' .. new .. ':batches', ttl)
  end
end
return 'moved'
