"""The durable queue of deliveries: due in Redis, claimed under a lease, none lost with a worker.

A job's or batch's end puts it in the notify list inside the same Lua transition
(``agentq.store``); a worker moves notified ones into the due set, claims due ones by pushing their
score to the end of a lease (a worker that dies mid-delivery lets the lease run out and another
takes it), and removes or reschedules each after its attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from agentq import lua

DUE_KEY = "agentq:webhooks:due"  # zset: "job:<id>" / "batch:<id>" -> when its next try is due
ATTEMPTS_KEY = "agentq:webhooks:attempts"  # hash: the same member -> attempts started


@dataclass(frozen=True)
class Claimed:
    kind: str  # "job" or "batch"
    object_id: str
    attempt: int  # 1-based

    @property
    def member(self) -> str:
        return f"{self.kind}:{self.object_id}"

    @property
    def msg_id(self) -> str:
        return f"{self.kind}_{self.object_id}"  # the webhook-id: the same on every attempt


class DeliveryQueue:
    """Deliveries due in Redis, claimed under a lease, so none is lost with a worker."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._take = lua.register(client, "webhooks_take_notified")
        self._claim = lua.register(client, "webhooks_claim")

    def add(self, kind: str, object_id: str, now: float | None = None) -> None:
        self._redis.zadd(DUE_KEY, {f"{kind}:{object_id}": now or time.time()}, nx=True)

    def take_notified(self, notify_key: str, limit: int = 100) -> int:
        return int(cast(int, self._take(keys=[notify_key, DUE_KEY], args=[time.time(), limit])))

    def claim(self, limit: int, lease: float, now: float | None = None) -> list[Claimed]:
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        flat = cast(
            list[Any], self._claim(keys=[DUE_KEY, ATTEMPTS_KEY], args=[now, now + lease, limit])
        )
        claimed = []
        for member, attempt in zip(flat[::2], flat[1::2], strict=True):
            name = member.decode() if isinstance(member, bytes) else str(member)
            kind, _, object_id = name.partition(":")
            claimed.append(Claimed(kind, object_id, int(attempt)))
        return claimed

    def retry_at(self, claimed: Claimed, when: float) -> None:
        self._redis.zadd(DUE_KEY, {claimed.member: when}, xx=True)

    def done(self, claimed: Claimed) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(DUE_KEY, claimed.member)
        pipe.hdel(ATTEMPTS_KEY, claimed.member)
        pipe.execute()
