"""The Celery application shared by producers (which send) and workers (which run).

Why each setting:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after its job
  ends, so a worker killed mid-job leaves it on the broker to be delivered again.
- ``worker_prefetch_multiplier=1``: a worker reserves no more messages than it has slots, so
  queued jobs stay available to other workers.
- ``visibility_timeout``: the Redis transport redelivers an unacknowledged message after this long;
  it must exceed the longest job so a slow job is not run twice (a duplicate would be dropped by
  the claim check, but it costs a delivery). Workers sweep for such messages every 10 s.
- results live in agentq's own job store, not in a Celery result backend.
- task events (``AGENTQ_TASK_EVENTS``, for Flower) are off by default;
- the broker transport is kombu's Redis transport, changed so that a Redis restart does not
  kill the worker (``agentq.broker_transport``);
- a message carries only the job id: the sealed token stays in the job store, so a message
  copied out of the broker (or shown in a task event) holds nothing of the user's.
"""

from __future__ import annotations

from celery import Celery

from agentq.broker_transport import transport_for
from agentq.connections import celery_transport_options
from agentq.settings import Settings

RUN_JOB_TASK = "agentq.run_job"


def make_celery(settings: Settings) -> Celery:
    app = Celery("agentq", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        broker_transport=transport_for(settings.redis_url),
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            **celery_transport_options(settings.redis_url, settings.redis_sentinel_master),
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Look for messages due for redelivery every 10 s (kombu's default is ~100 s).
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        enable_utc=True,
        # Events (for Flower) show a task's name, id and args: the job id only.
        task_send_sent_event=settings.task_events,
        worker_send_task_events=settings.task_events,
    )
    return app


def send_job(app: Celery, queue: str, job_id: str) -> None:
    """Send the message that runs a job (see ``agentq.dispatch`` for when it may be sent)."""
    app.send_task(
        RUN_JOB_TASK,
        args=[job_id],
        task_id=job_id,  # lets the maintenance thread find the job's message in the broker
        queue=queue,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    )
