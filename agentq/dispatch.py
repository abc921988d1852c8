"""Admission: which queued job gets a Celery message next.

A submitted job does not go straight to the broker. It waits in a *lane* in Redis (one lane per
tenant for single questions, one per batch), and a dispatcher hands out messages round-robin over
the lanes, one job per lane per turn, while:

- the tenant has fewer than ``AGENTQ_TENANT_MAX_INFLIGHT`` jobs dispatched and not yet ended;
- the lane (a batch) has fewer than its own cap (``AGENTQ_BATCH_MAX_INFLIGHT`` or the batch's);
- the broker queue stays shallow: messages waiting plus jobs running stay within the live
  workers' slots plus ``AGENTQ_DISPATCH_HEADROOM``.

So a 2,000-question audit never sits in front of another tenant's single question: the broker
never holds more than a few spare messages, and the next free slot goes to the next lane in turn.
Celery still carries each dispatched job (acks-late, redelivery, the lost-message lease), so
everything the reliability design guarantees holds from dispatch on.

Anyone may dispatch: the producer right after a submit (so a lone job starts at once), a worker
right after a job ends (its slot is free) and each worker's maintenance tick. The script is atomic,
so concurrent dispatchers never overshoot a cap. A job keeps its slot from dispatch until it ends,
retries and requeues included; the store's status scripts release it (``RELEASE_LUA``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
from celery import Celery

from agentq.celery_app import send_job
from agentq.connections import redis_errors
from agentq.jobs import TERMINAL_STATUSES
from agentq.logs import get_logger
from agentq.settings import Settings
from agentq.store import KEY_PREFIX, RUNNING_KEY, SENT_KEY, WORKER_PREFIX, JobStore

log = get_logger(__name__)

LANES_KEY = f"{KEY_PREFIX}:lanes"  # list: lanes with waiting jobs, in turn order
LANE_SET_KEY = f"{KEY_PREFIX}:lanes:set"  # set: the same lanes, so each is listed once
CAPACITY_KEY = f"{KEY_PREFIX}:capacity"  # hash: worker name -> its job slots
TENANTS_KEY = f"{KEY_PREFIX}:tenants"  # set: tenants that have had jobs in flight


def lane_key(lane: str) -> str:
    return f"{KEY_PREFIX}:lane:{lane}"


def lane_meta_key(lane: str) -> str:
    return f"{KEY_PREFIX}:lanemeta:{lane}"


def tenant_inflight_key(tenant: str) -> str:
    return f"{KEY_PREFIX}:inflight:t:{tenant}"


def lane_inflight_key(lane: str) -> str:
    return f"{KEY_PREFIX}:inflight:l:{lane}"


# Add job ids to a lane. KEYS: lanes list, lane set, lane, lane meta. ARGV: lane, tenant, cap
# (0 = none), held ('1' = not to be dispatched until released), ttl, job ids...
_ENQUEUE = """
for first = 6, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[3], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('HSET', KEYS[4], 'tenant', ARGV[2], 'cap', ARGV[3], 'held', ARGV[4])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return #ARGV - 5
"""

# Hand out up to ARGV[3] jobs, round-robin over lanes. KEYS: lanes list, lane set, capacity,
# running, sent, tenants. ARGV: now, tenant cap, most to hand out, headroom, key prefix, worker
# key prefix. Returns a flat list: job id, queue, job id, queue...
_DISPATCH = """
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
"""

# Give a job's slot back and put it at the front of its lane (its message could not be sent).
# KEYS: lanes list, lane set, sent. ARGV: job id, key prefix.
_UNDISPATCH = """
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
"""


class Dispatcher:
    """Puts jobs in lanes and hands out their messages; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        tenant_cap: int,
        headroom: int,
        ttl: int,
        default_queue: str,
        url: str = "redis",
    ) -> None:
        self._redis = client
        self._tenant_cap = tenant_cap
        self._headroom = headroom
        self._ttl = ttl
        self._default_queue = default_queue
        self._url = url
        self.enqueue_script = client.register_script(_ENQUEUE)
        self._dispatch = client.register_script(_DISPATCH)
        self._undispatch = client.register_script(_UNDISPATCH)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> Dispatcher:
        return cls(
            client,
            tenant_cap=settings.tenant_max_inflight,
            headroom=settings.dispatch_headroom,
            ttl=settings.job_ttl_seconds,
            default_queue=settings.queue,
            url=settings.redis_url,
        )

    def enqueue(
        self,
        pipe: redis.client.Pipeline,
        lane: str,
        tenant: str,
        job_ids: Sequence[str],
        *,
        cap: int = 0,
        held: bool = False,
    ) -> None:
        """Queue ``job_ids`` in ``lane`` as part of ``pipe`` (the transaction creating them)."""
        self.enqueue_script(
            keys=[LANES_KEY, LANE_SET_KEY, lane_key(lane), lane_meta_key(lane)],
            args=[lane, tenant, cap, "1" if held else "0", self._ttl, *job_ids],
            client=pipe,
        )

    def release_lane(self, lane: str) -> None:
        """Let a held lane's jobs be dispatched (a batch whose every job is written)."""
        with redis_errors(self._url):
            self._redis.hset(lane_meta_key(lane), "held", "0")

    def take(self, limit: int = 500) -> list[tuple[str, str]]:
        """Jobs that may be sent now, as (job id, queue); each is handed out once."""
        with redis_errors(self._url):
            flat = self._dispatch(
                keys=[LANES_KEY, LANE_SET_KEY, CAPACITY_KEY, RUNNING_KEY, SENT_KEY, TENANTS_KEY],
                args=[
                    repr(time.time()), self._tenant_cap, limit, self._headroom,
                    f"{KEY_PREFIX}:", WORKER_PREFIX,
                ],
            )  # fmt: skip
        pairs = [(str(flat[i]), str(flat[i + 1])) for i in range(0, len(flat), 2)]
        return [(job_id, queue or self._default_queue) for job_id, queue in pairs]

    def dispatch(self, celery: Celery, limit: int = 500) -> int:
        """Send the messages of every job that may run now; returns how many were sent.

        A job whose message cannot be sent goes back to the front of its lane, and the error
        is raised.
        """
        taken = self.take(limit)
        for position, (job_id, queue) in enumerate(taken):
            try:
                send_job(celery, queue, job_id)
            except Exception:
                for unsent, _queue in taken[position:]:
                    self.undispatch(unsent)
                raise
        if taken:
            log.debug("dispatched jobs", count=len(taken))
        return len(taken)

    def undispatch(self, job_id: str) -> None:
        with redis_errors(self._url):
            self._undispatch(
                keys=[LANES_KEY, LANE_SET_KEY, SENT_KEY], args=[job_id, f"{KEY_PREFIX}:"]
            )

    def register_worker(self, worker: str, slots: int) -> None:
        """Count a live worker's slots in the dispatch window (refreshed with its heartbeat)."""
        with redis_errors(self._url):
            self._redis.hset(CAPACITY_KEY, worker, slots)

    def unregister_worker(self, worker: str) -> None:
        with redis_errors(self._url):
            self._redis.hdel(CAPACITY_KEY, worker)

    def inflight(self, tenant: str) -> int:
        with redis_errors(self._url):
            return int(self._redis.zcard(tenant_inflight_key(tenant)))

    def waiting(self, lane: str) -> int:
        with redis_errors(self._url):
            return int(self._redis.llen(lane_key(lane)))

    def repair(self, store: JobStore, older_than: float = 60.0) -> int:
        """Free the slots of jobs that ended or expired without releasing them (a job record
        that expired while in flight); returns how many were freed."""
        freed = 0
        cutoff = time.time() - older_than
        with redis_errors(self._url):
            tenants = [str(t) for t in self._redis.smembers(TENANTS_KEY)]  # type: ignore[union-attr]
        for tenant in tenants:
            key = tenant_inflight_key(tenant)
            with redis_errors(self._url):
                ids = [str(i) for i in self._redis.zrangebyscore(key, "-inf", cutoff)]
                if not ids and not self._redis.zcard(key):
                    self._redis.srem(TENANTS_KEY, tenant)
                    continue
            statuses = store.statuses(ids)
            stale = [i for i, st in statuses.items() if st is None or st in TERMINAL_STATUSES]
            if stale:
                with redis_errors(self._url):
                    self._redis.zrem(key, *stale)
                freed += len(stale)
        return freed
