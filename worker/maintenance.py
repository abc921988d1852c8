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
- When Redis restarts or fails over (its run id changes) or comes back after the connection was
  lost, the worker reconciles at once (``watch_redis``): it puts back the jobs it runs whose
  claims were lost, requeues those Redis says it runs and it does not (their ends were lost),
  and, once the settling window has passed, resends lost messages and frees stale slots.
- Jobs waiting in their lanes are dispatched as slots free up (``agentq.dispatch``), and slots
  held by jobs whose records expired are freed.
- A batch whose last job ended gets its report written (one worker does it) and its webhook
  queued; so does a job with a webhook. Due webhooks are delivered on the event loop, not in a
  job slot (``worker.webhook_delivery``).
"""

from __future__ import annotations

import threading
import time

import redis
from celery import Celery

from agentq import broker_state
from agentq.batches import BatchStore, build_report
from agentq.celery_app import send_job
from agentq.connections import redis_errors
from agentq.dispatch import Dispatcher
from agentq.errors import ErrorCode, ServiceUnavailable
from agentq.jobs import JobError, JobStatus
from agentq.logs import get_logger
from agentq.schedule_runs import ScheduledRuns
from agentq.sealing import TokenSealer
from agentq.settings import Settings
from agentq.store import JobStore
from worker.inflight import claimed, inflight
from worker.webhook_delivery import WebhookDeliveries

log = get_logger(__name__)

TICK_SECONDS = 0.5
REAP_EVERY_SECONDS = 5.0
# The statuses of the jobs running here are read at least every this many ticks (5 s).
FULL_CHECK_TICKS = 10
OVERRUN_GRACE_SECONDS = 120.0
# A queued job whose message was sent this long ago, is in no queue and whose job is still
# unclaimed is lost: a consumer popped it and died, or dropped it, before the claim (a consumer
# holds a message only in memory, and claims its job as soon as it has it; see
# agentq.celery_app). A duplicate, had the message not been lost after all, is dropped at claim.
LOST_AFTER_SECONDS = 30.0
# After a Redis restart, failover or outage, when the settling window has passed: a message sent
# this long ago whose job is still unclaimed is resent. (A duplicate costs a delivery: it is
# dropped at claim.)
RECONCILE_AFTER_SECONDS = 2.0


class Maintenance:
    def __init__(
        self,
        store: JobStore,
        dispatcher: Dispatcher,
        celery: Celery,
        settings: Settings,
        hostname: str,
    ) -> None:
        self._store = store
        self._batches = BatchStore(store.redis, settings.job_ttl_seconds, settings.redis_url)
        self._dispatcher = dispatcher
        self._celery = celery
        self._settings = settings
        self._hostname = hostname  # this process's Celery hostname: the name its claims bear
        self.webhooks = WebhookDeliveries(store, self._batches, settings)
        secret = settings.secret_key
        self._scheduled = ScheduledRuns(
            store.redis,
            self._batches,
            TokenSealer(secret.get_secret_value() if secret else None),
            settings.redis_url,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentq-maintenance", daemon=True)
        self._last_reap = 0.0
        self._run_id: str | None = None  # the Redis server's, as last seen
        self._redis_lost = False  # a tick failed to reach Redis since it was last seen
        self._reconcile_at: float | None = None  # (monotonic) when the pending reconcile runs
        self._cancels_seen: int | None = None  # Redis's cancel counter, as last seen
        self._ticks_unchecked = 0  # ticks since the statuses of the jobs here were last read

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
                if isinstance(exc, ServiceUnavailable | redis.ConnectionError | redis.TimeoutError):
                    self._redis_lost = True
                log.warning("maintenance tick failed", error=str(exc))

    def tick(self) -> None:
        self.watch_redis()
        if self._reconcile_at is not None and time.monotonic() >= self._reconcile_at:
            self._reconcile_at = None
            self.reconcile()
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
            summary = None
            if batch.schedule is not None:
                report.changes = self._scheduled.changes_for(report, batch.owner).only_changes()
                summary = report.changes.summary()
            self._batches.save_report(batch_id, report.model_dump_json(), summary)
            log.info("batch ended", batch_id=batch_id, status=str(batch.status), total=batch.total)
            if batch.webhook_url and batch.notify_due(report):
                self.webhooks.add("batch", batch_id)
            elif batch.webhook_url:
                log.info("webhook not due", batch_id=batch_id, notify_when=batch.notify_when)

    def stop_cancelled_jobs(self) -> None:
        """Stop the jobs running here that were cancelled (or whose record is gone).

        Reading the status of every job in flight each tick cost more CPU than any other part
        of the tick (a command per job, 2% of a busy worker's CPU), so it is read when Redis's
        cancel counter has moved since the last look, and every ``FULL_CHECK_TICKS`` anyway (a
        record expired or deleted, a counter lost with a Redis restart). The counter is read
        before the statuses: a cancel between the two is seen now or at the next tick.
        """
        running_here = inflight.job_ids()
        if not running_here:
            return
        cancels = self._store.cancels()
        self._ticks_unchecked += 1
        if cancels == self._cancels_seen and self._ticks_unchecked < FULL_CHECK_TICKS:
            return
        self._cancels_seen, self._ticks_unchecked = cancels, 0
        for job_id, status in self._store.statuses(running_here).items():
            if status in (JobStatus.CANCELLED, None) and inflight.stop(job_id, "cancelled"):
                log.info("stopping cancelled job", job_id=job_id)

    def watch_redis(self) -> None:
        """Notice a Redis restart or failover (a new run id) or a lost and regained connection,
        and reconcile at once rather than after LOST_AFTER_SECONDS.

        A restart from an append-only file written ``everysec`` (or a failover to a replica
        that lacked the last writes) takes the state back by a second or two: a claim, an end,
        a dispatch may be gone, while the workers and the broker's consumers have moved on.
        The first script to see the new run id opens a settling window in which no queued job
        is claimed (``agentq/lua/server_epoch.lua``); in it each worker puts back the jobs it
        runs and requeues those Redis says it runs and it does not. When the window has passed,
        ``reconcile`` resends the messages that were lost and frees stale slots.
        """
        run_id, settling = self._store.server_epoch()
        restarted = self._run_id is not None and run_id != self._run_id
        regained, self._redis_lost = self._redis_lost, False
        self._run_id = run_id
        if not (restarted or regained or (settling > 0 and self._reconcile_at is None)):
            return
        log.warning(
            "redis restarted or failed over; reconciling"
            if restarted or settling > 0
            else "redis is reachable again; reconciling",
            settling_seconds=round(settling, 2),
        )
        self.reassert_claimed()
        self._reconcile_at = time.monotonic() + settling + RECONCILE_AFTER_SECONDS

    def reassert_claimed(self) -> None:
        """Put back the jobs this process runs whose claims Redis lost, and requeue the jobs
        Redis says this worker runs that it does not (their recorded ends were lost)."""
        mine = dict(claimed.items())
        for job_id, attempt in mine.items():
            if not attempt:  # its claim has not come back yet: it settles by itself
                continue
            result = self._store.reassert(job_id, self._hostname, attempt)
            if result == "reasserted":
                log.warning("put back a running job whose claim redis lost", job_id=job_id)
            elif result == "missing":
                log.error(
                    "a running job is gone from redis (its submit was not on disk)", job_id=job_id
                )
        started_before = time.time() - RECONCILE_AFTER_SECONDS
        ids = [
            i for i, started in self._store.running() if i not in mine and started < started_before
        ]
        for job in self._store.load_many(ids):
            if job is None or job.status != JobStatus.RUNNING or job.worker != self._hostname:
                continue
            result = self._store.requeue(job.id, 0.0, owner=self._hostname)
            log.warning(
                "requeued a job whose recorded end redis lost", job_id=job.id, result=result
            )

    def reconcile(self) -> None:
        resent = self.resend_lost_messages(RECONCILE_AFTER_SECONDS)
        freed = self._dispatcher.repair(self._store, older_than=0)
        dispatched = self._dispatcher.dispatch(self._celery)
        log.info("reconciled with redis", resent=resent, freed=freed, dispatched=dispatched)

    def resend_lost_messages(self, sent_for: float) -> int:
        """Send again the message of each queued job whose message was sent more than
        ``sent_for`` seconds ago and is not waiting in its queue. Returns how many were sent.

        A duplicate (the message was not lost after all) is dropped when claimed.
        """
        ids = self._store.unclaimed(older_than=sent_for)
        if not ids:
            return 0
        jobs = [j for j in self._store.load_many(ids) if j is not None]
        queued = [j for j in jobs if j.status == JobStatus.QUEUED]
        stale = set(ids) - {j.id for j in queued}
        if stale:  # ended or expired: they must not hold a place in the dispatch window
            self._store.unmark_sent(sorted(stale))
        if not queued:
            return 0
        with redis_errors(self._settings.redis_url):
            waiting = broker_state.waiting_ids(
                self._store.redis, {j.queue or self._settings.queue for j in queued}
            )
        resent = 0
        for job in queued:
            if job.id in waiting:
                continue
            send_job(self._celery, job.queue or self._settings.queue, job.id)
            self._store.mark_sent(job.id)
            resent += 1
            log.warning("resent the lost message of a queued job", job_id=job.id)
        return resent

    def reap(self) -> None:
        self.resend_lost_messages(LOST_AFTER_SECONDS)
        freed = self._dispatcher.repair(self._store)
        if freed:
            log.warning("freed dispatch slots of jobs that expired in flight", count=freed)
        now = time.time()
        mine = {job_id for job_id, _attempt in claimed.items()}  # (inflight's are among them)
        # Every worker looks at every other worker's running jobs: read them, and whether their
        # workers live, in two round trips, not two per job.
        others = [
            (job_id, started) for job_id, started in self._store.running() if job_id not in mine
        ]
        jobs = self._store.load_many([job_id for job_id, _started in others])
        alive = self._store.workers_alive({job.worker for job in jobs if job and job.worker})
        for (job_id, started), job in zip(others, jobs, strict=True):
            if job is None or job.status != JobStatus.RUNNING or not job.worker:
                continue
            if job.worker not in alive:
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
