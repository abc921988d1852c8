"""The Celery task that runs one job: claim it, unseal the token, run the agent, record the end.

The task's thread blocks while the job's coroutine runs on the process's shared event loop, so a
worker with N thread slots keeps N jobs in flight on one loop. The task never raises for a job's
own failure: it records the outcome (success, a retry after backoff, or a final failure) and its
message is acknowledged. Only a message whose job could not be recorded is left unacknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import structlog

from agentq.audit import tenant_id
from agentq.batches import BatchStore
from agentq.celery_app import RUN_JOB_TASK
from agentq.connections import connect
from agentq.dispatch import Dispatcher
from agentq.errors import AgentqError, ErrorCode, ServiceUnavailable
from agentq.jobs import AttemptSummary, Job, JobError, JobStatus
from agentq.logs import get_logger, scrub, scrub_data, secret_scope
from agentq.metrics import observe_attempt, observe_finished
from agentq.prices import usd
from agentq.sealing import SealBinding, TokenSealer
from agentq.settings import Settings
from agentq.spend import Spend
from agentq.store import SETTLE_SECONDS, JobStore
from agentq.traces import AttemptTrace
from worker.agent_run import AttemptOutcome, run_attempt
from worker.app import app, settings
from worker.event_loop import get_loop_thread
from worker.inflight import claimed
from worker.retries import retry_in

log = get_logger(__name__)
T = TypeVar("T")

# How long recording an outcome keeps trying while Redis is away (e.g. restarting).
PERSIST_SECONDS = 120.0


@dataclass
class Runtime:
    settings: Settings
    store: JobStore
    sealer: TokenSealer
    dispatcher: Dispatcher
    spend: Spend
    batches: BatchStore


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            secret = settings.secret_key.get_secret_value() if settings.secret_key else None
            client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
            _runtime = Runtime(
                settings=settings,
                store=JobStore.for_settings(client, settings),
                sealer=TokenSealer(secret),
                dispatcher=Dispatcher.for_settings(client, settings),
                spend=Spend(client, settings.tenant_daily_max_cost_usd, settings.redis_url),
                batches=BatchStore(client, settings.job_ttl_seconds, settings.redis_url),
            )
        return _runtime


def persist(write: Callable[[], T]) -> T:
    """Run a store write, waiting out a Redis outage for up to PERSIST_SECONDS."""
    deadline = time.monotonic() + PERSIST_SECONDS
    delay = 0.2
    while True:
        try:
            return write()
        except ServiceUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("redis unavailable; will retry the write", error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


@app.task(name=RUN_JOB_TASK, bind=True)
def run_job(self: Any, job_id: str, *_legacy: Any) -> None:
    """Run one attempt of a job. (Messages from before 0.2 also carried the sealed token;
    it is ignored: the job store's copy is the one kept current by ``agentq reseal``.)"""
    runtime = get_runtime()
    worker_name = str(self.request.hostname or "agentq@unknown")
    dispatched = False
    try:
        dispatched = run_claimed(runtime, job_id, worker_name)
    finally:
        # This slot is free again: let the next job in turn have a message (a job's end
        # already did, in the same round trip as its record).
        if not dispatched:
            hand_over(runtime)


def claim(runtime: Runtime, job_id: str, worker_name: str) -> tuple[str, Job | None, str | None]:
    """Claim the job, waiting out a Redis outage, and the settling window that follows a Redis
    restart or failover (while the workers put back the jobs they run: see
    ``agentq/lua/server_epoch.lua``)."""
    store = runtime.store
    settled_by = time.monotonic() + 4 * SETTLE_SECONDS
    while True:
        result = persist(
            lambda: store.claim_and_load(job_id, worker_name, runtime.settings.poison_after)
        )
        if result[0] == "mine":
            # Claimed under this process's name, and this process holds no other message of it
            # (run_claimed reserved it): its own claim of this very message, applied by Redis and
            # the answer lost (persist sent it again). The job runs and nobody runs it: take it.
            return ("claimed", *result[1:])
        if result[0] != "settling" or time.monotonic() >= settled_by:
            return result
        time.sleep(SETTLE_SECONDS / 10)


def run_claimed(runtime: Runtime, job_id: str, worker_name: str) -> bool:
    """Claim and run one job; True if its end already dispatched the next jobs."""
    if not claimed.reserve(job_id):
        log.info("message not run", job_id=job_id, reason="busy")  # this process has it
        return False
    try:
        outcome, job, sealed = claim(runtime, job_id, worker_name)
        if outcome != "claimed" or job is None:
            # 'settling' past its window: the message is dropped, and the job, still queued
            # with no message, is sent again by the housekeeping's lost-message check.
            log.info("message not run", job_id=job_id, reason=outcome)
            return False
        structlog.contextvars.bind_contextvars(
            job_id=job_id, attempt=job.attempts, tenant=tenant_id(job.owner)
        )
        claimed.set_attempt(job_id, job.attempts)
        return execute(runtime, job, sealed, worker_name)
    finally:
        claimed.remove(job_id)
        structlog.contextvars.clear_contextvars()


def execute(runtime: Runtime, job: Job, sealed_token: str | None, worker_name: str) -> bool:
    """Run the claimed job's attempt and record it; True if its end dispatched (``end_job``)."""
    store, config = runtime.store, runtime.settings
    attempt = job.attempts
    try:
        # Nothing more is spent once its batch's or its tenant's budget is (agentq.spend).
        over = persist(lambda: runtime.spend.exceeded(job))
        if over is not None:
            raise AgentqError(over, code=ErrorCode.BUDGET_EXCEEDED, transient=False)
        if sealed_token is None:
            raise AgentqError(
                "the job's sealed token has expired; submit the question again",
                code=ErrorCode.AUTH_ERROR,
                transient=False,
            )
        # Opens only for the job it was sealed for: a token copied onto another job in Redis
        # fails here, before any MCP or model request.
        token = runtime.sealer.unseal(
            sealed_token, SealBinding.of(job), ttl=config.sealed_token_ttl_seconds
        )
    except AgentqError as exc:
        failure = JobError(code=exc.code, message=str(exc))
        persist(lambda: store.finish(job.id, JobStatus.FAILED, error=failure, owner=worker_name))
        log.error("job failed", error_code=exc.code)
        return False
    deadline = job.deadline_seconds or config.job_deadline_seconds
    log.info("job started", deadline_seconds=deadline)
    # The token stays registered until the outcome is recorded: record_outcome scrubs with it.
    with secret_scope(token):
        try:
            outcome = get_loop_thread().run(
                run_attempt(job, token, attempt, config, deadline), timeout=deadline + 60
            )
        except TimeoutError:
            # The loop did not give the job back in time: it is wedged, not merely slow.
            outcome = None
        if outcome is None:
            error = JobError(code=ErrorCode.TIMEOUT, message="the job did not stop at its deadline")
            persist(lambda: store.finish(job.id, JobStatus.FAILED, error=error, owner=worker_name))
            return False
        return record_outcome(runtime, job, attempt, outcome, worker_name)


def scrubbed(outcome: AttemptOutcome) -> AttemptOutcome:
    """``outcome`` without credentials: the job's token (registered by ``secret_scope``) and any
    credential shape, in the answer, the error and every field of the trace.

    The MCP server or Infrahub may echo the token back, in an error text or a tool result; what
    is recorded here reaches the job record, its trace, the API, webhooks and reports.
    """
    error = outcome.error
    if error is not None:
        error = AgentqError(
            scrub(error.message),
            code=error.code,
            retry_after=error.retry_after,
            transient=error.transient,
        )
    return replace(
        outcome,
        trace=scrub_data(outcome.trace),
        answer=None if outcome.answer is None else scrub(outcome.answer),
        error=error,
    )


def record_outcome(
    runtime: Runtime, job: Job, attempt: int, outcome: AttemptOutcome, worker_name: str
) -> bool:
    """Persist an attempt's outcome; called inside the job's ``secret_scope``, so that nothing
    it writes can carry the token. True if the job ended (and so dispatched: ``end_job``)."""
    store, config = runtime.store, runtime.settings
    outcome = scrubbed(outcome)
    error = outcome.error
    trace = outcome.trace
    summary = AttemptSummary(
        attempt=attempt,
        started_at=trace.started_at,
        finished_at=trace.finished_at,
        outcome="succeeded",
        # Written with the attempt's record: the job's usage, model and tier come from these.
        usage=outcome.usage,
        model=outcome.model,
        service_tier=outcome.served_tier,
    )
    spend(runtime, job, outcome)
    if error is None:
        observe_attempt(trace, "succeeded", None)
        observe_finished("succeeded", None, time.time() - job.created_at)
        done = end_job(
            runtime,
            job.id,
            summary,
            trace,
            JobStatus.SUCCEEDED,
            answer=outcome.answer,
            owner=worker_name,
        )
        log.info("job succeeded", recorded=done, duration_ms=round(trace.totals.duration_ms))
        return True

    summary.error_code = str(error.code)
    summary.error_message = error.message
    if outcome.stopped == "cancelled":
        summary.outcome = trace.outcome = "cancelled"
        observe_attempt(trace, "cancelled", str(error.code))
        persist(lambda: store.record_attempt(job.id, summary, trace))
        log.info("job cancelled while running")
        return False
    if outcome.stopped == "shutdown":
        summary.outcome = trace.outcome = "requeued"
        observe_attempt(trace, "requeued", str(error.code))
        persist(lambda: store.record_attempt(job.id, summary, trace))
        requeued = persist(lambda: store.requeue(job.id, 0.0, owner=worker_name))
        log.info("job requeued at shutdown", requeued=requeued)
        return False
    delay = retry_in(error, attempt, config)
    if delay is not None:
        summary.outcome = trace.outcome = "retrying"
        summary.retry_in_seconds = delay
        observe_attempt(trace, "retrying", str(error.code))
        persist(lambda: store.record_attempt(job.id, summary, trace))
        requeued = persist(lambda: store.requeue(job.id, delay, owner=worker_name))
        log.info(
            "job will be retried",
            error_code=error.code,
            retry_in_seconds=round(delay, 2),
            requeued=requeued,
        )
        return False
    summary.outcome = "failed"
    observe_attempt(trace, "failed", str(error.code))
    observe_finished("failed", str(error.code), time.time() - job.created_at)
    end_job(
        runtime,
        job.id,
        summary,
        trace,
        JobStatus.FAILED,
        error=JobError(code=error.code, message=error.message),
        owner=worker_name,
    )
    log.warning("job failed", error_code=error.code, attempts=attempt)
    return True


def spend(runtime: Runtime, job: Job, outcome: AttemptOutcome) -> None:
    """Count what the attempt's model calls cost against its batch's and tenant's budgets; when
    that spends its batch's budget, end the batch's queued jobs."""
    usage = outcome.usage
    if usage is None:
        return
    recorded = persist(lambda: runtime.spend.record(job, usage.cost_usd))
    if not recorded.crossed or job.batch_id is None:
        return
    batch_id = job.batch_id
    error = JobError(
        code=ErrorCode.BUDGET_EXCEEDED,
        message=f"its batch's budget of {usd(recorded.batch_budget)} is spent; it was not run",
    )
    ended = 0
    for ids in runtime.batches.job_ids(batch_id):
        ended += persist(partial(runtime.store.fail_queued, ids, error))
    log.warning(
        "batch budget spent; its queued jobs end budget_exceeded",
        batch_id=batch_id,
        spent_usd=recorded.batch_spent,
        budget_usd=recorded.batch_budget,
        ended=ended,
    )


def end_job(
    runtime: Runtime,
    job_id: str,
    summary: AttemptSummary,
    trace: AttemptTrace,
    status: JobStatus,
    **end: Any,
) -> bool:
    """Record the last attempt and the job's end, and hand the freed slot to the next jobs, in
    one round trip (``JobStore.end_attempt``); then send their messages. True if the end
    applied (not if another worker had taken the job over)."""
    dispatcher = runtime.dispatcher
    applied, flat = persist(
        lambda: runtime.store.end_attempt(
            job_id, summary, trace, status, also=dispatcher.take_after, **end
        )
    )
    hand_over(runtime, flat)
    return bool(applied)


def hand_over(runtime: Runtime, flat: list[Any] | None = None) -> None:
    """Send the messages of the jobs a freed slot lets run: those a take at the job's end
    handed out (``flat``), or a take's now. Best effort: the maintenance tick dispatches too."""
    dispatcher = runtime.dispatcher
    try:
        taken = dispatcher.take() if flat is None else dispatcher.taken(flat)
        dispatcher.send(app, taken)
    except Exception as exc:
        log.warning("dispatch after a job failed", error=str(exc))
