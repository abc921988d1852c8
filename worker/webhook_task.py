"""Delivering completion webhooks, as Celery tasks so a delivery survives its worker.

A job or batch that ends with a webhook URL gets one task (sent by the maintenance thread); the
task makes one signed POST and, if that failed in a way worth retrying (connection error, 429,
5xx), retries itself with backoff up to ``AGENTQ_WEBHOOK_ATTEMPTS`` times. The ``webhook-id`` is
the same on every try, so a receiver can drop duplicates.
"""

from __future__ import annotations

from typing import Any

from agentq.batches import BatchStore
from agentq.celery_app import DELIVER_WEBHOOK_TASK
from agentq.logs import get_logger
from agentq.webhooks import deliver_once
from worker.app import app, settings
from worker.backoff import retry_delay
from worker.tasks import get_runtime

log = get_logger(__name__)


def webhook_payload(kind: str, object_id: str) -> tuple[str, dict[str, Any]] | None:
    """(URL, body) of the webhook for a job or batch; None if it has none (or is gone)."""
    runtime = get_runtime()
    if kind == "job":
        job = runtime.store.load(object_id)
        if job is None or not job.webhook_url:
            return None
        return job.webhook_url, {"type": "job.ended", "data": job.public()}
    batches = BatchStore(runtime.store.redis, settings.job_ttl_seconds, settings.redis_url)
    batch = batches.load(object_id)
    if batch is None or not batch.webhook_url:
        return None
    return batch.webhook_url, {"type": "batch.ended", "data": batch.public()}


@app.task(name=DELIVER_WEBHOOK_TASK, bind=True, max_retries=None, ignore_result=True)
def deliver_webhook(self: Any, kind: str, object_id: str) -> None:
    if settings.webhook_secret is None:
        log.warning("webhook not sent: AGENTQ_WEBHOOK_SECRET is not set", object_id=object_id)
        return
    found = webhook_payload(kind, object_id)
    if found is None:
        return
    url, payload = found
    attempt = int(self.request.retries) + 1
    result = deliver_once(
        url, payload, settings.webhook_secret.get_secret_value(), f"{kind}_{object_id}"
    )
    if result.delivered:
        log.info("webhook delivered", kind=kind, object_id=object_id, attempt=attempt)
        return
    if result.retryable and attempt < settings.webhook_attempts:
        delay = retry_delay(attempt, 1.0, 60.0, result.retry_after)
        log.info(
            "webhook failed; will retry",
            kind=kind,
            object_id=object_id,
            error=result.error,
            retry_in_seconds=round(delay, 2),
        )
        raise self.retry(countdown=delay)
    log.warning(
        "webhook not delivered",
        kind=kind,
        object_id=object_id,
        error=result.error,
        attempts=attempt,
    )
