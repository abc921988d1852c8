"""Dollars spent on model calls, counted as attempts end, and the budgets they are held to.

Two budgets: a batch's own (``max_cost_usd``, also a scheduled report's), kept on the batch
hash beside its spend, and a tenant's per UTC day (``AGENTQ_TENANT_DAILY_MAX_COST_USD``), one
counter per tenant and day. Each attempt's cost is added when the attempt ends
(``record``); a job is checked when a worker claims it (``exceeded``), before any model call,
so once a budget is spent no further job of it runs: those jobs end ``budget_exceeded`` and the
ones already running finish. The worker whose job crossed a batch's budget also ends the rest of
the batch's queued jobs at once (``JobStore.fail_queued``), so they do not wait their turn in
the dispatch queue only to end.

A call the price table cannot price adds nothing: budgets need known prices, which is why a
budget is refused at submit for a model the table does not list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from agentq import lua
from agentq.batches import batch_key
from agentq.connections import redis_errors
from agentq.jobs import Job
from agentq.prices import usd
from agentq.store import KEY_PREFIX

DAY_SECONDS = 24 * 3600


def tenant_day_key(owner: str, at: float | None = None) -> str:
    day = time.strftime("%Y%m%d", time.gmtime(time.time() if at is None else at))
    return f"{KEY_PREFIX}:spend:{owner}:{day}"


@dataclass(frozen=True)
class Recorded:
    """A batch's spend after an attempt's cost was added, and its budget (None: none)."""

    batch_spent: float | None = None
    batch_budget: float | None = None
    crossed: bool = False  # this cost spent the batch's budget (true for one attempt only)


class Spend:
    def __init__(self, client: redis.Redis, tenant_daily_max: float, url: str = "redis") -> None:
        self._redis = client
        self._daily_max = tenant_daily_max
        self._url = url
        self._record = lua.register(client, "spend_record")

    def record(self, job: Job, cost: float | None) -> Recorded:
        """Add one attempt's cost to its batch and its tenant's day, in one atomic step
        (``agentq/lua/spend_record.lua``). An unknown cost (a model the price table does not
        list) adds nothing, and makes the batch's cost unknown."""
        if cost == 0 or (cost is None and job.batch_id is None):
            return Recorded()  # nothing to add: no round trip
        keys = [tenant_day_key(job.owner)]
        if job.batch_id is not None:
            keys.append(batch_key(job.batch_id))
        amount = "" if cost is None else repr(cost)
        with redis_errors(self._url):
            spent, budget, crossed = self._record(keys=keys, args=[amount, 2 * DAY_SECONDS])
        if not budget:
            return Recorded()
        return Recorded(
            batch_spent=float(spent), batch_budget=float(budget), crossed=bool(int(crossed))
        )

    def exceeded(self, job: Job) -> str | None:
        """Why ``job`` may not run (its batch's or its tenant's budget is spent), or None."""
        batch = job.batch_id if job.budgeted else None
        if batch is None and self._daily_max <= 0:
            return None  # nothing to check: no round trip
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(tenant_day_key(job.owner))
            if batch is not None:
                pipe.hmget(batch_key(batch), ["cost_usd", "max_cost_usd"])
            results = pipe.execute()
        if batch is not None:
            spent, budget = results[1]
            if budget is not None and float(spent or 0) >= float(budget):
                return (
                    f"its batch's budget of {usd(float(budget))} is spent "
                    f"({usd(float(spent or 0))}); it was not run"
                )
        today = float(results[0] or 0)
        if self._daily_max > 0 and today >= self._daily_max:
            return (
                f"its tenant has spent {usd(today)} today, the daily cap of "
                f"{usd(self._daily_max)} (AGENTQ_TENANT_DAILY_MAX_COST_USD); it was not run"
            )
        return None
