"""The Celery task that runs one job: claim it, unseal the token, run the agent, record the end.

The task's thread blocks while the job's coroutine runs on the process's shared event loop, so a
worker with N thread slots keeps N jobs in flight on one loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from agentq.celery_app import RUN_JOB_TASK
from agentq.errors import AgentqError
from agentq.jobs import JobError, JobStatus
from agentq.logs import get_logger, secret_scope
from agentq.sealing import TokenSealer
from agentq.settings import Settings
from agentq.store import JobStore, connect
from worker.agent_run import run_attempt
from worker.app import app, settings
from worker.event_loop import get_loop_thread

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: JobStore
    sealer: TokenSealer


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            secret = settings.secret_key.get_secret_value() if settings.secret_key else None
            _runtime = Runtime(
                settings=settings,
                store=JobStore(connect(settings.redis_url), settings.job_ttl_seconds),
                sealer=TokenSealer(secret),
            )
        return _runtime


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str, sealed_token: str) -> None:
    runtime = get_runtime()
    store = runtime.store
    job = store.start_attempt(job_id)
    if job is None:
        log.info("job is gone or already finished; message dropped", job_id=job_id)
        return
    attempt = job.attempts
    structlog.contextvars.bind_contextvars(job_id=job_id, attempt=attempt, tenant=job.owner[:12])
    try:
        try:
            token = runtime.sealer.unseal(sealed_token)
        except AgentqError as exc:
            store.finish(job_id, JobStatus.FAILED, error=JobError(code=exc.code, message=str(exc)))
            log.error("job failed", error_code=exc.code)
            return
        log.info("job started")
        with secret_scope(token):
            outcome = get_loop_thread().run(run_attempt(job, token, attempt, runtime.settings))
        store.append_attempt(job_id, outcome.trace)
        if outcome.error is None:
            store.finish(
                job_id,
                JobStatus.SUCCEEDED,
                answer=outcome.answer,
                usage=outcome.usage,
                model=outcome.model,
            )
            log.info("job succeeded", duration_ms=round(outcome.trace.totals.duration_ms))
        else:
            store.finish(
                job_id,
                JobStatus.FAILED,
                error=JobError(code=outcome.error.code, message=outcome.error.message),
                model=outcome.model,
            )
            log.warning("job failed", error_code=outcome.error.code)
    finally:
        structlog.contextvars.clear_contextvars()
