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
from dataclasses import dataclass
from typing import Any

from celery import Celery

from agentq.celery_app import make_celery, send_job
from agentq.errors import BadRequest, JobNotFound, ServiceUnavailable
from agentq.jobs import Job, JobStatus
from agentq.sealing import TokenSealer
from agentq.settings import Settings, get_settings
from agentq.store import JobStore, connect, redact_url, redis_errors
from agentq.traces import Trace


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


def check_deadline(deadline: float | None, settings: Settings) -> float | None:
    if deadline is None:
        return None
    limit = settings.visibility_timeout_seconds - 60
    if not 1 <= deadline <= limit:
        raise BadRequest(
            f"the deadline must be between 1 and {limit} seconds "
            "(below AGENTQ_VISIBILITY_TIMEOUT_SECONDS)"
        )
    return float(deadline)


@dataclass
class CancelResult:
    """What cancelling did: ``previous`` is the status the job had, ``cancelled`` whether it
    was cancelled now (False: it had already ended, as ``previous`` says)."""

    job_id: str
    previous: JobStatus
    cancelled: bool


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

    def submit(
        self,
        question: str,
        token: str,
        metadata: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> str:
        """Enqueue ``question`` to run with ``token``'s permissions; returns the job id at once.

        ``deadline`` (seconds) bounds each attempt instead of AGENTQ_JOB_DEADLINE_SECONDS.
        """
        question = check_question(question, self.settings.max_question_bytes)
        token = check_token(token)
        deadline = check_deadline(deadline, self.settings)
        job = Job.new(
            question,
            owner=self.sealer.fingerprint(token),
            metadata=metadata,
            deadline_seconds=deadline,
            queue=self.settings.queue,
        )
        sealed = self.sealer.seal(token)
        self.store.create(job, sealed)
        try:
            send_job(self.celery, self.settings.queue, job.id, sealed)
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

    def cancel(self, job_id: str, token: str) -> CancelResult:
        """Cancel the job: a queued job never runs; a running one stops within about a second."""
        job = self.get(job_id, token)
        previous = self.store.cancel(job.id)
        if previous is None:
            raise JobNotFound(job_id)
        status = JobStatus(previous)
        return CancelResult(job.id, status, cancelled=not status.terminal)

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


def cancel(job_id: str, token: str) -> CancelResult:
    return default_client().cancel(job_id, token)


__all__ = ["CancelResult", "Client", "JobNotFound", "cancel", "get", "submit", "wait"]
