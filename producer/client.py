"""The Python API for submitting questions and reading their jobs.

    from producer import Client
    client = Client()                       # settings from the environment
    job_id = client.submit("Which devices are in atl1?", token)
    job = client.wait(job_id, token, timeout=120)

Everything is checked before anything is written, and a job whose message cannot be sent is
removed again, so a failed submit leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from agentq.celery_app import RUN_JOB_TASK, make_celery
from agentq.errors import BadRequest, JobNotFound, ServiceUnavailable
from agentq.jobs import Job
from agentq.sealing import TokenSealer
from agentq.settings import Settings, get_settings
from agentq.store import JobStore, connect, redact_url, redis_errors
from agentq.traces import Trace

SEALED_ARG_REPR = "'<sealed token>'"


def check_token(token: str | None) -> str:
    """The token without surrounding whitespace; BadRequest if it is missing or malformed."""
    if token is None or not token.strip():
        raise BadRequest("no Infrahub token given (set INFRAHUB_API_TOKEN or use --token-file)")
    token = token.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise BadRequest("the Infrahub token contains whitespace or control characters")
    return token


def check_question(question: str | None, max_bytes: int) -> str:
    if question is None or not question.strip():
        raise BadRequest("the question is empty")
    question = question.strip()
    size = len(question.encode())
    if size > max_bytes:
        raise BadRequest(
            f"the question is {size} bytes; the limit is {max_bytes} (AGENTQ_MAX_QUESTION_BYTES)"
        )
    return question


class Client:
    """Submits jobs and reads them back, scoped to the token that submitted them."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        secret = self.settings.secret_key
        self.sealer = TokenSealer(secret.get_secret_value() if secret else None)
        self.redis = connect(self.settings.redis_url)
        self.store = JobStore(self.redis, self.settings.job_ttl_seconds, self.settings.redis_url)
        self._celery: Celery | None = None

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    def ping(self) -> None:
        """ServiceUnavailable unless Redis answers."""
        with redis_errors(self.settings.redis_url):
            self.redis.ping()

    def submit(self, question: str, token: str, metadata: dict[str, Any] | None = None) -> str:
        """Enqueue ``question`` to run with ``token``'s permissions; returns the job id at once."""
        question = check_question(question, self.settings.max_question_bytes)
        token = check_token(token)
        job = Job.new(question, owner=self.sealer.fingerprint(token), metadata=metadata)
        sealed = self.sealer.seal(token)
        self.store.create(job)
        try:
            self.celery.send_task(
                RUN_JOB_TASK,
                args=[job.id, sealed],
                task_id=job.id,
                queue=self.settings.queue,
                argsrepr=f"({job.id!r}, {SEALED_ARG_REPR})",
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:
            self._forget(job.id)
            raise ServiceUnavailable(
                f"cannot send the job to the broker at {redact_url(self.settings.redis_url)}: "
                f"{type(exc).__name__}"
            ) from None
        return job.id

    def _forget(self, job_id: str) -> None:
        # If Redis is gone the record expires with its TTL, and no message refers to it.
        with contextlib.suppress(ServiceUnavailable):
            self.store.delete(job_id)

    def get(self, job_id: str, token: str) -> Job:
        """The job, if ``token`` submitted it; JobNotFound otherwise."""
        token = check_token(token)
        return self.store.load_owned(job_id.strip(), token, self.sealer)

    def trace(self, job_id: str, token: str) -> Trace:
        """The job's trace (empty until its first attempt ends)."""
        job = self.get(job_id, token)
        return self.store.load_trace(job.id) or Trace(job_id=job.id)

    def wait(
        self,
        job_id: str,
        token: str,
        timeout: float | None = None,
        poll_interval: float = 0.2,
        on_poll: Callable[[Job], None] | None = None,
    ) -> Job:
        """Block until the job is terminal (TimeoutError after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = min(poll_interval, 0.05)
        while True:
            job = self.get(job_id, token)
            if on_poll is not None:
                on_poll(job)
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:g}s")
            time.sleep(interval)
            interval = min(interval * 2, poll_interval)


_default: Client | None = None


def default_client() -> Client:
    global _default
    if _default is None:
        _default = Client()
    return _default


def submit(question: str, token: str, metadata: dict[str, Any] | None = None) -> str:
    """Enqueue a question with the environment's settings; see ``Client.submit``."""
    return default_client().submit(question, token, metadata)


def get(job_id: str, token: str) -> Job:
    return default_client().get(job_id, token)


def wait(job_id: str, token: str, timeout: float | None = None) -> Job:
    return default_client().wait(job_id, token, timeout)


__all__ = ["Client", "JobNotFound", "get", "submit", "wait"]
