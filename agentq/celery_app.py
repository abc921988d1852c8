"""The Celery application shared by producers (which send) and workers (which run).

Why each setting:
- ``task_acks_late`` + ``worker_prefetch_multiplier=1``: a message counts as held until its job
  ends, so a worker takes no more messages than it has free slots and queued jobs stay available
  to other workers.
- no acknowledgement emulation (``ack_emulation`` off): a consumer pops a message and holds it in
  memory until its job ends, with no copy in kombu's ``unacked`` hash. agentq's job store already
  records who runs what (a job is claimed the moment its message arrives), a dead worker's
  running jobs are requeued from its expired heartbeat, and a message taken and lost before its
  claim (the consumer died in between) is found and sent again by the housekeeping's lost-message
  check (``worker/maintenance.py``). kombu's copy would be a second record of the same thing, and
  it cost two Redis transactions per job in the consumer's thread (ZADD and HSET on delivery, ZREM
  and HDEL on acknowledgement: 11% of a busy worker's CPU in ``make bench``) and a redelivery of
  every message a worker held when it died, an hour later.
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
        worker_prefetch_multiplier=1,
        broker_transport_options={
            **celery_transport_options(settings.redis_url, settings.redis_sentinel_master),
            "ack_emulation": False,
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
