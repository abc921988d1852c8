"""A worker's housekeeping thread: due retries, cancellations, and jobs lost by dead workers.

Every worker runs one; they share the work through Redis, where each step is atomic, so any
number of workers can run it at once and none is special.
- Retries wait in a Redis sorted set (not in a Celery ETA message held in some worker's memory),
  so a retry survives the death of the worker that scheduled it; when due, a message is sent to
  the job's own queue (whichever worker noticed it is due).
- A job its owner cancelled while it runs here is stopped (its status is polled, twice a second).
- A job whose worker's heartbeat expired is requeued; one whose runs keep being lost is poisoned.
- A job running far past its deadline on a live worker is failed, so nothing stays ``running``.
- A queued job whose message was lost (see ``resend_lost_messages``) gets a new one.
- Jobs waiting in their lanes are dispatched as slots free up (``agentq.dispatch``), and slots
  held by jobs whose records expired are freed.
- A batch whose last job ended gets its report written (one worker does it) and its webhook
  queued; so does a job with a webhook. Due webhooks are delivered on the event loop, not in a
  job slot (``worker.webhook_delivery``).
"""

from __future__ import annotations

import threading
import time

from celery import Celery

from agentq.batches import BatchStore, build_report
from agentq.celery_app import send_job
from agentq.dispatch import Dispatcher
from agentq.errors import ErrorCode
from agentq.jobs import JobError, JobStatus
from agentq.logs import get_logger
from agentq.settings import Settings
from agentq.store import JobStore
from worker.inflight import inflight
from worker.webhook_delivery import WebhookDeliveries

log = get_logger(__name__)

TICK_SECONDS = 0.5
REAP_EVERY_SECONDS = 5.0
OVERRUN_GRACE_SECONDS = 120.0


class Maintenance:
    def __init__(
        self, store: JobStore, dispatcher: Dispatcher, celery: Celery, settings: Settings
    ) -> None:
        self._store = store
        self._batches = BatchStore(store.redis, settings.job_ttl_seconds, settings.redis_url)
        self._dispatcher = dispatcher
        self._celery = celery
        self._settings = settings
        self.webhooks = WebhookDeliveries(store, self._batches, settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentq-maintenance", daemon=True)
        self._last_reap = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception as exc:  # Redis away: try again next tick
                log.warning("maintenance tick failed", error=str(exc))

    def tick(self) -> None:
        self.send_due_retries()
        self._dispatcher.dispatch(self._celery)
        self.stop_cancelled_jobs()
        self.finish_ended_batches()
        self.webhooks.tick()
        if time.monotonic() - self._last_reap >= REAP_EVERY_SECONDS:
            self._last_reap = time.monotonic()
            self.reap()

    def send_due_retries(self) -> None:
        for job_id in self._store.pop_due():
            sealed = self._store.sealed_token(job_id)
            job = self._store.load(job_id)
            if job is None or job.status.terminal:
                continue
            if sealed is None:
                self._store.finish(
                    job_id,
                    JobStatus.FAILED,
                    error=JobError(
                        code=ErrorCode.INTERNAL, message="the job's sealed token has expired"
                    ),
                )
                continue
            try:
                send_job(self._celery, job.queue or self._settings.queue, job_id)
            except Exception:
                self._store.requeue_due(job_id)
                raise
            self._store.mark_sent(job_id)

    def finish_ended_batches(self) -> None:
        """Write the report of each batch whose last job ended, then queue its webhook."""
        for batch_id in self._batches.ended():
            if not self._batches.lock_report(batch_id):
                continue  # another worker is writing it
            batch = self._batches.load(batch_id)
            if batch is None:
                self._batches.forget_ended(batch_id)
                continue
            report = build_report(batch, self._store, self._batches)
            self._batches.save_report(batch_id, report.model_dump_json())
            log.info("batch ended", batch_id=batch_id, status=str(batch.status), total=batch.total)
            if batch.webhook_url:
                self.webhooks.add("batch", batch_id)

    def stop_cancelled_jobs(self) -> None:
        running_here = inflight.job_ids()
        if not running_here:
            return
        for job_id, status in self._store.statuses(running_here).items():
            if status in (JobStatus.CANCELLED, None) and inflight.stop(job_id, "cancelled"):
                log.info("stopping cancelled job", job_id=job_id)

    def resend_lost_messages(self) -> None:
        """Send again the message of a queued job that no worker ever claimed.

        kombu's Redis transport pops a message and then records it as unacknowledged; a worker
        killed between the two loses the message for good. A job whose message is older than
        the visibility timeout, whose queue is empty and whose message no worker holds, has
        lost it. (A duplicate, should one still exist, is dropped when claimed.)
        """
        lease = self._settings.visibility_timeout_seconds + 10
        for job_id in self._store.unclaimed(older_than=lease):
            job = self._store.load(job_id)
            sealed = self._store.sealed_token(job_id)
            if job is None or job.status != JobStatus.QUEUED or sealed is None:
                continue
            queue = job.queue or self._settings.queue
            if self._store.message_pending(queue, job_id):
                continue
            send_job(self._celery, queue, job_id)
            self._store.mark_sent(job_id)
            log.warning("resent the lost message of a queued job", job_id=job_id)

    def reap(self) -> None:
        self.resend_lost_messages()
        freed = self._dispatcher.repair(self._store)
        if freed:
            log.warning("freed dispatch slots of jobs that expired in flight", count=freed)
        now = time.time()
        mine = set(inflight.job_ids())
        for job_id, started in self._store.running():
            if job_id in mine:
                continue
            job = self._store.load(job_id)
            if job is None or job.status != JobStatus.RUNNING or not job.worker:
                continue
            if not self._store.worker_alive(job.worker):
                result = self._store.requeue(
                    job_id,
                    0.0,
                    owner=job.worker,
                    lost=True,
                    poison_after=self._settings.poison_after,
                )
                log.warning("requeued a job whose worker died", job_id=job_id, result=result)
                continue
            deadline = job.deadline_seconds or self._settings.job_deadline_seconds
            if now - started > deadline + OVERRUN_GRACE_SECONDS:
                self._store.finish(
                    job_id,
                    JobStatus.FAILED,
                    error=JobError(
                        code=ErrorCode.TIMEOUT,
                        message=f"the job ran past its deadline of {deadline:g}s",
                    ),
                    owner=job.worker,
                )
                log.warning("failed a job running far past its deadline", job_id=job_id)
