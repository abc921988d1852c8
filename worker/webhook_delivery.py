"""Delivering completion webhooks without taking a job slot, and without losing one.

Why not a Celery task: tasks share the worker's threads pool with jobs, so a slow or dripping
receiver held a job slot for as long as it liked, and enough of them stopped jobs from running.
Deliveries are instead coroutines on the worker's shared event loop (``worker.event_loop``): a
delivery only waits on the network, which the loop does for hundreds at little cost. At most
``AGENTQ_WEBHOOK_CONCURRENCY`` run at once per worker process (a semaphore), each under a
whole-attempt deadline (``AGENTQ_WEBHOOK_TIMEOUT_SECONDS``).

Durability comes from Redis, not from a message: a delivery waits in a sorted set of due
deliveries (``agentq.webhooks.queue.DeliveryQueue``). The maintenance tick claims due ones by
pushing their score to the end of a lease; a delivery that succeeded, or failed for good, or used
its ``AGENTQ_WEBHOOK_ATTEMPTS`` tries, is removed; one to retry gets its backoff as its score. A
worker that dies mid-delivery leaves its claim to expire, and another worker takes it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

from agentq.batches import BatchStore
from agentq.logs import get_logger
from agentq.settings import Settings
from agentq.store import NOTIFY_KEY, JobStore
from agentq.webhooks.delivery import DeliveryResult, deliver
from agentq.webhooks.queue import Claimed, DeliveryQueue
from agentq.webhooks.signing import tenant_secret
from worker.event_loop import get_loop_thread
from worker.retries import retry_delay

log = get_logger(__name__)

LEASE_MARGIN_SECONDS = 30.0  # a claim outlives its attempt's deadline by this much


class WebhookDeliveries:
    """This worker process's share of the due deliveries, run on its event loop."""

    def __init__(self, store: JobStore, batches: BatchStore, settings: Settings) -> None:
        self._store = store
        self._batches = batches
        self._settings = settings
        self.queue = DeliveryQueue(store.redis)
        self._slots = threading.BoundedSemaphore(settings.webhook_concurrency)

    def add(self, kind: str, object_id: str) -> None:
        self.queue.add(kind, object_id)

    def tick(self) -> None:
        """Note newly ended jobs' webhooks, then start the due deliveries there is room for."""
        self.queue.take_notified(NOTIFY_KEY)
        free = 0
        while self._slots.acquire(blocking=False):
            free += 1
        lease = self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        try:
            claimed = self.queue.claim(free, lease)
        except Exception:
            self._release(free)
            raise
        self._release(free - len(claimed))
        for item in claimed:
            self._start(item)

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _start(self, item: Claimed) -> None:
        try:
            future: Future[None] = asyncio.run_coroutine_threadsafe(
                self.run(item), get_loop_thread().loop
            )
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())

    async def run(self, item: Claimed) -> None:
        """One attempt of a claimed delivery, and what it leads to."""
        try:
            if item.attempt > self._settings.webhook_attempts:  # its claimants kept dying
                await asyncio.to_thread(self.queue.done, item)
                log.warning("webhook not delivered: out of attempts", object_id=item.object_id)
                return
            found = await asyncio.to_thread(self._payload, item)
            if found is None:
                await asyncio.to_thread(self.queue.done, item)
                return
            url, payload, secret = found
            result = await deliver(
                url,
                payload,
                secret,
                item.msg_id,
                allow_private=self._settings.webhook_allow_private,
                allow_http=self._settings.webhook_allow_http,
                deadline=self._settings.webhook_timeout_seconds,
            )
            await asyncio.to_thread(self._settle, item, result)
        except Exception as exc:  # Redis away: the lease runs out and it is tried again
            log.warning("webhook delivery failed", object_id=item.object_id, error=str(exc))

    def _payload(self, item: Claimed) -> tuple[str, dict[str, Any], str] | None:
        """(URL, body, signing secret) of a delivery; None if there is nothing to send."""
        master = self._settings.webhook_secret
        if master is None:
            log.warning("webhook not sent: AGENTQ_WEBHOOK_SECRET is not set", id=item.object_id)
            return None
        if item.kind == "job":
            job = self._store.load(item.object_id)
            if job is None or not job.webhook_url:
                return None
            secret = tenant_secret(master.get_secret_value(), job.owner)
            return job.webhook_url, {"type": "job.ended", "data": job.public()}, secret
        batch = self._batches.load(item.object_id)
        if batch is None or not batch.webhook_url:
            return None
        secret = tenant_secret(master.get_secret_value(), batch.owner)
        if batch.schedule is None:
            return batch.webhook_url, {"type": "batch.ended", "data": batch.public()}, secret
        # A scheduled run: its report's name and the run's id (its batch id); ``changes``, what
        # changed since the previous run, is the batch's own.
        data = {**batch.public(), "report": batch.schedule, "run": batch.id}
        return batch.webhook_url, {"type": "report.run_ended", "data": data}, secret

    def _settle(self, item: Claimed, result: DeliveryResult) -> None:
        fields = {"kind": item.kind, "object_id": item.object_id, "attempt": item.attempt}
        if result.delivered:
            self.queue.done(item)
            log.info("webhook delivered", **fields)
            return
        if result.retryable and item.attempt < self._settings.webhook_attempts:
            delay = retry_delay(item.attempt, 1.0, 60.0, result.retry_after)
            self.queue.retry_at(item, time.time() + delay)
            log.info(
                "webhook failed; will retry",
                error=result.error,
                retry_in_seconds=round(delay, 2),
                **fields,
            )
            return
        self.queue.done(item)
        log.warning("webhook not delivered", error=result.error, **fields)
