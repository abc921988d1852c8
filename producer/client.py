"""The Python API for submitting questions and reading their jobs.

    from producer import Client
    client = Client()                       # settings from the environment
    job_id = client.submit("Which devices are in atl1?", token)
    job = client.wait(job_id, token, timeout=120)

Everything is checked before anything is written, and a job is written in one transaction with
its place in the dispatch queue (``agentq.dispatch``), so a failed submit leaves nothing behind
and a written job is never stranded. Every submit, read and cancel goes to the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Celery

from agentq.answers import check_answer_format
from agentq.audit import audit
from agentq.batches import (
    Batch,
    BatchItem,
    BatchStore,
    NotifyWhen,
    SharedRow,
    batch_key,
    build_report,
    is_batch_id,
)
from agentq.celery_app import make_celery
from agentq.connections import connect, redis_errors
from agentq.dispatch import Dispatcher
from agentq.errors import BadRequest, JobNotFound
from agentq.idempotency import (
    Claimed,
    IdempotencyStore,
    Kind,
    check_idempotency_key,
    request_digest,
)
from agentq.jobs import Job, JobStatus, is_job_id
from agentq.logs import get_logger
from agentq.quotas import Quotas
from agentq.report_changes import RunChanges
from agentq.reports import BatchReport
from agentq.schedule_runs import ScheduledRuns
from agentq.sealing import SealBinding, TokenSealer
from agentq.settings import Settings, get_settings
from agentq.store import JobStore
from agentq.token_proof import ProofCache
from agentq.traces import Trace
from agentq.webhooks.signing import owner_webhook_secret
from agentq.webhooks.targets import check_webhook_url
from producer.checks import (
    check_allow_writes,
    check_deadline,
    check_max_cost,
    check_metadata,
    check_question,
    check_question_ids,
    check_service_tier,
    check_token,
)

log = get_logger(__name__)


class Submission(str):
    """What a submit made: the job's or batch's id (this is a ``str``, so callers that keep ids
    need nothing more), and whether the submit was a ``repeat`` of an earlier one with the same
    idempotency key (then the id is that submit's, and nothing new was made)."""

    repeat: bool

    def __new__(cls, made_id: str, repeat: bool = False) -> Submission:
        submission = super().__new__(cls, made_id)
        submission.repeat = repeat
        return submission

    @property
    def id(self) -> str:
        return str(self)


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
        self.redis = connect(
            self.settings.redis_url, sentinel_master=self.settings.redis_sentinel_master
        )
        self.store = JobStore.for_settings(self.redis, self.settings)
        self.dispatcher = Dispatcher.for_settings(self.redis, self.settings)
        self.batches = BatchStore(
            self.redis, self.settings.job_ttl_seconds, self.settings.redis_url
        )
        self.quotas = Quotas(self.redis, self.settings)
        self.scheduled = ScheduledRuns(
            self.redis, self.batches, self.sealer, self.settings.redis_url
        )
        self.proofs = ProofCache(self.settings.token_proof_seconds)
        self.idempotency = IdempotencyStore(
            self.redis, self.settings.redis_url, ttl=self.settings.job_ttl_seconds
        )
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
        *,
        allow_writes: bool = False,
        webhook_url: str | None = None,
        answer_format: str = "text",
        item_key: str | None = None,
        idempotency_key: str | None = None,
        service_tier: str | None = None,
    ) -> Submission:
        """Enqueue ``question`` to run with ``token``'s permissions; returns the job id at once
        (a ``Submission``: also says whether it was a repeat).

        ``deadline`` (seconds) bounds each attempt instead of AGENTQ_JOB_DEADLINE_SECONDS.
        ``allow_writes`` offers the agent the server's write tools too, where the deployment
        allows it (AGENTQ_ALLOW_WRITE_TOOLS); by default a job may only read. ``webhook_url``
        gets a signed POST when the job ends. ``answer_format="items"`` asks for the answer as
        a list of items identified by ``item_key`` (default ``name``; ``agentq.answers``).
        With ``idempotency_key``, a repeat of this submit with the same key and token (kept
        24 h) returns the first job's id and makes nothing; the same key with a different
        request is an IdempotencyConflict (``agentq.idempotency``). ``service_tier`` (auto,
        default, flex, priority) is asked of the model instead of AGENTQ_SERVICE_TIER.
        """
        question = check_question(question, self.settings.max_question_bytes)
        token = check_token(token)
        metadata = check_metadata(metadata, self.settings.max_metadata_bytes)
        deadline = check_deadline(deadline, self.settings)
        allow_writes = check_allow_writes(allow_writes, self.settings)
        fmt, key = check_answer_format(answer_format, item_key)
        tier = check_service_tier(service_tier)
        if webhook_url is not None:
            webhook_url = self.check_webhook(webhook_url)
        if idempotency_key is not None:
            idempotency_key = check_idempotency_key(idempotency_key)
        owner = self.sealer.fingerprint(token)
        job = Job.new(
            question,
            owner=owner,
            metadata=metadata,
            deadline_seconds=deadline,
            queue=self.settings.queue,
            allow_writes=allow_writes,
            webhook_url=webhook_url,
            answer_format=fmt,
            item_key=key,
            service_tier=tier,
        )
        if idempotency_key is not None:
            first = self._first_of(owner, "job", idempotency_key, job)
            if first is not None:
                audit("job.submit.repeat", owner, job_id=first.id)
                return first
        with self._released_on_failure(owner, "job", idempotency_key, job.id):
            self.admit(token, 1, batch=False)
            lane = job.lane or job.owner

            def enqueue(pipe: Any) -> None:
                self.dispatcher.enqueue(pipe, lane, job.owner, [job.id])
                self.quotas.opened(pipe, job.owner, [job.id], job.created_at)

            # The job is written, queued and (if it may start now) handed out in one round trip.
            flat = self.store.create(
                [job],
                [self.sealer.seal(token, SealBinding.of(job))],
                enqueue,
                also=self.dispatcher.take_after,
            )
        audit("job.submit", job.owner, job_id=job.id, allow_writes=allow_writes)
        self.dispatch(flat)
        return Submission(job.id)

    def submit_batch(
        self,
        items: Sequence[str | BatchItem],
        token: str,
        *,
        name: str | None = None,
        max_inflight: int | None = None,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        deadline: float | None = None,
        allow_writes: bool = False,
        schedule: str | None = None,
        answer_format: str = "text",
        item_key: str | None = None,
        notify_when: NotifyWhen = "always",
        idempotency_key: str | None = None,
        max_cost_usd: float | None = None,
        service_tier: str | None = None,
        dedupe: bool = True,
    ) -> Submission:
        """Enqueue every question of a batch with ``token``; returns the batch id at once (a
        ``Submission``).

        All of it is checked first and written in one transaction: a bad question anywhere
        enqueues nothing. At most ``max_inflight`` (default AGENTQ_BATCH_MAX_INFLIGHT) of its
        jobs run at once; ``webhook_url`` gets a signed POST when the batch ends (for a
        scheduled report's run, as ``notify_when`` says). ``answer_format`` and ``item_key``
        apply to every question, as in ``submit``; so do ``idempotency_key`` and
        ``service_tier``. Once its jobs have spent ``max_cost_usd`` dollars (at the price
        table's prices), no more of them run: they end ``budget_exceeded``. With ``dedupe`` (the
        default), questions that are the same once trimmed are asked once, and every row that
        repeats one gets its answer (``shared_with`` in the report).
        """
        settings = self.settings
        token = check_token(token)
        questions = [BatchItem.of(item) for item in items]
        if not questions:
            raise BadRequest("the batch has no questions")
        if len(questions) > settings.max_batch_questions:
            raise BadRequest(
                f"the batch has {len(questions):,} questions; the limit is "
                f"{settings.max_batch_questions:,} (AGENTQ_MAX_BATCH_QUESTIONS)"
            )
        checked: list[Checked] = []
        question_ids = check_question_ids(item.id for item in questions)
        pairs = zip(questions, question_ids, strict=True)
        for number, (item, question_id) in enumerate(pairs, start=1):
            try:
                checked.append(
                    (
                        check_question(item.question, settings.max_question_bytes),
                        check_metadata(item.metadata, settings.max_metadata_bytes),
                        question_id,
                    )
                )
            except BadRequest as exc:
                raise BadRequest(f"question {number}: {exc}") from None
        fmt, key = check_answer_format(answer_format, item_key)
        cap = settings.batch_max_inflight if max_inflight is None else max_inflight
        if not 1 <= cap <= settings.tenant_max_inflight:
            raise BadRequest(
                f"max_inflight must be between 1 and {settings.tenant_max_inflight} "
                "(AGENTQ_TENANT_MAX_INFLIGHT)"
            )
        if name is not None and (not name.strip() or len(name) > 200):
            raise BadRequest("the batch name must be 1 to 200 characters")
        if webhook_url is not None:
            webhook_url = self.check_webhook(webhook_url)
        batch_meta = check_metadata(metadata, settings.max_metadata_bytes)
        deadline = check_deadline(deadline, settings)
        allow_writes = check_allow_writes(allow_writes, settings)
        if idempotency_key is not None:
            idempotency_key = check_idempotency_key(idempotency_key)
        budget = check_max_cost(max_cost_usd, settings)
        tier = check_service_tier(service_tier)
        unique, row_jobs, shared = shared_questions(checked, dedupe)
        owner = self.sealer.fingerprint(token)
        batch = Batch(
            id=Batch.new_id(),
            owner=owner,
            name=name.strip() if name else None,
            total=len(unique),
            shared=len(shared),
            max_cost_usd=budget,
            service_tier=tier,
            created_at=time.time(),
            max_inflight=cap,
            webhook_url=webhook_url,
            schedule=schedule,
            metadata=batch_meta,
            notify_when=notify_when,
            answer_format=fmt,
            item_key=key,
        )
        if idempotency_key is not None:
            # What the batch record does not hold: its questions and what each job is given.
            given = {"questions": checked, "deadline": deadline, "allow_writes": allow_writes}
            first = self._first_of(owner, "batch", idempotency_key, batch, given)
            if first is not None:
                audit("batch.submit.repeat", owner, batch_id=first.id)
                return first
        with self._released_on_failure(owner, "batch", idempotency_key, batch.id):
            self.admit(token, len(unique), batch=True)
            jobs = [
                Job.new(
                    question,
                    owner=owner,
                    metadata=meta,
                    deadline_seconds=deadline,
                    queue=settings.queue,
                    batch_id=batch.id,
                    allow_writes=allow_writes,
                    answer_format=fmt,
                    item_key=key,
                    question_id=question_id,
                    service_tier=tier,
                    budgeted=budget is not None,
                )
                for question, meta, question_id in unique
            ]
            job_ids = [job.id for job in jobs]
            lane = jobs[0].lane or owner

            def enqueue(pipe: Any) -> None:
                self.batches.add_to(pipe, batch, [job_ids[i] for i in row_jobs], shared)
                self.dispatcher.enqueue(pipe, lane, owner, job_ids, cap=cap)
                self.quotas.opened(pipe, owner, job_ids, batch.created_at, batch.id)

            sealed = [self.sealer.seal(token, SealBinding.of(job)) for job in jobs]
            self.store.create(jobs, sealed, enqueue)
        audit("batch.submit", owner, batch_id=batch.id, total=batch.total, shared=batch.shared)
        self.dispatch()
        return Submission(batch.id)

    def _first_of(
        self,
        owner: str,
        kind: Kind,
        idempotency_key: str,
        made: Job | Batch,
        given: dict[str, Any] | None = None,
    ) -> Submission | None:
        """Claim the key for ``made`` (None: go on and write it); or, for a repeat, the first
        submit's id once its job or batch exists. The request compared is ``made`` as checked
        and built, but for its id and time, with what ``given`` adds. Called before any quota
        or token proof is spent; IdempotencyConflict if the key was used for another request."""
        request = made.model_dump(mode="json", exclude={"id", "created_at"})
        digest = request_digest({"made": request, **(given or {})})
        record = JobStore.job_key if kind == "job" else batch_key

        def exists(made_id: str) -> bool:
            return bool(self.redis.exists(record(made_id)))

        outcome = self.idempotency.settle(owner, kind, idempotency_key, made.id, digest, exists)
        return None if isinstance(outcome, Claimed) else Submission(outcome.id, repeat=True)

    @contextmanager
    def _released_on_failure(
        self, owner: str, kind: Kind, idempotency_key: str | None, made_id: str
    ) -> Iterator[None]:
        """Around a submit's write: if it fails, its idempotency key (if any) is released."""
        try:
            yield
        except BaseException:
            if idempotency_key is not None:
                self._unclaim(owner, kind, idempotency_key, made_id)
            raise

    def _unclaim(self, owner: str, kind: Kind, idempotency_key: str, made_id: str) -> None:
        """After a failed submit: release its key unless its job or batch was written after
        all (a write whose confirmation failed keeps the key, so a retry makes no second)."""
        record = JobStore.job_key if kind == "job" else batch_key
        try:
            if not self.redis.exists(record(made_id)):
                self.idempotency.release(owner, kind, idempotency_key, made_id)
        except Exception as exc:  # the original error says what went wrong
            log.warning("could not release an idempotency key", error=type(exc).__name__)

    def admit(self, token: str, jobs: int, *, batch: bool) -> str:
        """The token's owner fingerprint, once its quotas allow this submit and (with
        AGENTQ_VERIFY_TOKEN_AT_SUBMIT) Infrahub has accepted the token."""
        if self.settings.verify_token_at_submit:
            # Imported here: the MCP client costs ~1 s to import, and most commands never
            # prove a token (the check is off by default; the worker proves every token anyway).
            from producer.token_check import prove_at_submit

            prove_at_submit(self.settings, token, self.proofs)
        owner = self.sealer.fingerprint(token)
        self.quotas.admit(owner, jobs, batch=batch)
        return owner

    def webhook_secret(self, token: str) -> str:
        """The secret (whsec_...) that signs ``token``'s webhooks; BadRequest if webhooks are
        off. Audited."""
        owner = self.sealer.fingerprint(check_token(token))
        return owner_webhook_secret(self.settings.webhook_secret, owner)

    def check_webhook(self, url: str) -> str:
        if self.settings.webhook_secret is None:
            raise BadRequest("webhooks need AGENTQ_WEBHOOK_SECRET to sign them; it is not set")
        return check_webhook_url(
            url,
            allow_private=self.settings.webhook_allow_private,
            allow_http=self.settings.webhook_allow_http,
        )

    def batch(self, batch_id: str, token: str) -> Batch:
        """The batch with its counts by status, if ``token`` submitted it; JobNotFound else."""
        return self._owned_batch(batch_id, token, "batch.read")

    def _owned_batch(self, batch_id: str, token: str, action: str | None) -> Batch:
        """The batch if ``token`` submitted it; JobNotFound for an id of the wrong shape, a
        missing batch and another owner's alike. The owner is compared before the record is
        read, so the last two take the same path."""
        token = check_token(token)
        batch_id = batch_id.strip()
        owner = self.batches.owner(batch_id) if is_batch_id(batch_id) else None
        mine = self.sealer.owns(owner or "", token)
        batch = self.batches.load(batch_id) if mine else None
        if batch is None:
            audit(
                f"{action or 'batch.read'}.refused",
                self.sealer.fingerprint(token),
                batch_id=batch_id,
            )
            raise JobNotFound(batch_id, kind="batch")
        if action is not None:
            audit(action, batch.owner, batch_id=batch.id)
        return batch

    def list_batches(self, token: str, limit: int = 50) -> list[Batch]:
        """The newest ``limit`` batches ``token`` submitted, newest first."""
        token = check_token(token)
        owner = self.sealer.fingerprint(token)
        owned = self.batches.owned(self.sealer.fingerprints(token), max(1, min(limit, 1000)))
        found = [self.batches.load(i) for i in owned]
        audit("batch.list", owner)
        return [b for b in found if b is not None and self.sealer.owns(b.owner, token)]

    def cancel_batch(self, batch_id: str, token: str) -> int:
        """Cancel every queued and running job of the batch; returns how many were cancelled."""
        batch = self._owned_batch(batch_id, token, "batch.cancel")
        self.store.check_durable()
        self.batches.mark_cancelled(batch.id)
        cancelled = sum(self.store.cancel_many(ids) for ids in self.batches.job_ids(batch.id))
        self.store.confirm_durable()
        return cancelled

    def batch_report(self, batch_id: str, token: str) -> BatchReport:
        """The batch's report: the one written when it ended, or a live one while it runs."""
        batch = self._owned_batch(batch_id, token, "batch.report")
        saved = self.batches.load_report(batch.id)
        if saved is not None:
            return BatchReport.model_validate_json(saved)
        return build_report(batch, self.store, self.batches)

    def report_diff(
        self,
        name: str,
        token: str,
        from_run: str | None = None,
        to_run: str | None = None,
    ) -> RunChanges:
        """What changed between two finished runs of the scheduled report ``name`` (by default
        its latest run against the one before); ``previous_run`` is None when there is no
        earlier run to compare with. JobNotFound for a report or run ``token`` does not own."""
        token = check_token(token)
        return self.scheduled.diff(name.strip(), token, from_run, to_run)

    def run_report(self, name: str, token: str, timeout: float = 30.0) -> dict[str, str]:
        """Ask the beat to start a run of the scheduled report ``name`` now, and wait for its
        answer: ``{"status": "started", "run": <batch id>}`` or ``{"status": "refused",
        "reason": ...}`` (its previous run still runs, say). TimeoutError, with the request
        withdrawn, if no beat took it within ``timeout`` seconds; JobNotFound unless ``token``
        owns the report."""
        name, token = name.strip(), check_token(token)
        request = self.scheduled.request_run(name, token)
        deadline = time.monotonic() + max(timeout, 0.1)
        while True:
            outcome = self.scheduled.request_outcome(name, request, token)
            if outcome.get("status") not in (None, "waiting"):
                return outcome
            if time.monotonic() >= deadline:
                if self.scheduled.withdraw_request(request, name):
                    raise TimeoutError(
                        f"no beat took the request within {timeout:g}s: is `agentq beat` "
                        "running with this report's schedules file?"
                    )
                deadline = time.monotonic() + 10.0  # taken just now: its answer is coming
            time.sleep(0.1)

    def wait_batch(
        self,
        batch_id: str,
        token: str,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_poll: Callable[[Batch], None] | None = None,
    ) -> Batch:
        """Block until every job of the batch has ended (TimeoutError after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        action: str | None = "batch.read"
        while True:
            batch = self._owned_batch(batch_id, token, action)
            action = None
            if on_poll is not None:
                on_poll(batch)
            if batch.ended >= batch.total:
                return batch
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {batch_id}: {batch.ended}/{batch.total} jobs ended after {timeout:g}s"
                )
            time.sleep(poll_interval)

    def dispatch(self, flat: Any = None) -> None:
        """Send the messages of the jobs that may start now (a lone job starts at once); with
        ``flat``, of those a take already handed out (``Dispatcher.take_after``'s answer, or the
        error it met).

        Best effort: a job that cannot be sent now stays queued and a worker dispatches it.
        """
        try:
            if isinstance(flat, Exception):
                raise flat
            dispatcher = self.dispatcher
            taken = dispatcher.take() if flat is None else dispatcher.taken(flat)
            dispatcher.send(self.celery, taken)
        except Exception as exc:
            log.warning("could not dispatch now; workers will", error=type(exc).__name__)

    def list_jobs(self, token: str, limit: int = 50) -> list[Job]:
        """The newest ``limit`` jobs ``token`` submitted, newest first."""
        token = check_token(token)
        owner = self.sealer.fingerprint(token)
        ids = self.store.owned_ids(self.sealer.fingerprints(token), max(1, min(limit, 1000)))
        jobs = [job for job in self.store.load_many(ids) if job is not None]
        audit("job.list", owner, count=len(jobs))
        return [job for job in jobs if self.sealer.owns(job.owner, token)]

    def get(self, job_id: str, token: str) -> Job:
        """The job, if ``token`` submitted it; JobNotFound otherwise."""
        return self._owned(job_id, token, "job.read")

    def _owned(self, job_id: str, token: str, action: str | None) -> Job:
        """The job if ``token`` submitted it; JobNotFound for an id of the wrong shape (checked
        before it becomes a Redis key), a missing job and another owner's alike."""
        token = check_token(token)
        job_id = job_id.strip()
        try:
            if not is_job_id(job_id):
                raise JobNotFound(job_id)
            job = self.store.load_owned(job_id, token, self.sealer)
        except JobNotFound:
            audit(f"{action or 'job.read'}.refused", self.sealer.fingerprint(token), job_id=job_id)
            raise
        if action is not None:
            audit(action, job.owner, job_id=job.id)
        return job

    def cancel(self, job_id: str, token: str) -> CancelResult:
        """Cancel the job: a queued job never runs; a running one stops within about a second."""
        job = self._owned(job_id, token, "job.cancel")
        previous = self.store.cancel(job.id)
        if previous is None:
            raise JobNotFound(job_id)
        status = JobStatus(previous)
        return CancelResult(job.id, status, cancelled=not status.terminal)

    def trace(self, job_id: str, token: str) -> Trace:
        """The job's trace (empty until its first attempt ends)."""
        job = self._owned(job_id, token, "job.trace")
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
        action: str | None = "job.read"  # audited once, not on every poll
        while True:
            job = self._owned(job_id, token, action)
            action = None
            if on_poll is not None:
                on_poll(job)
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout:g}s")
            time.sleep(interval)
            interval = min(interval * 2, poll_interval)


Checked = tuple[str, dict[str, Any], str | None]  # a batch row: question, metadata, question id


def shared_questions(
    rows: Sequence[Checked], dedupe: bool
) -> tuple[list[Checked], list[int], dict[int, SharedRow]]:
    """A batch's rows as the jobs to make (one per distinct question with ``dedupe``, the first
    row that asks it), each row's job (an index into them) and the rows that repeat an earlier
    question, by row number, with their own metadata and id."""
    unique: list[Checked] = []
    row_jobs: list[int] = []
    shared: dict[int, SharedRow] = {}
    first: dict[str, tuple[int, int]] = {}  # question -> its job's index, its first row
    for number, (question, metadata, question_id) in enumerate(rows, start=1):
        made = first.get(question) if dedupe else None
        if made is None:
            first[question] = (len(unique), number)
            row_jobs.append(len(unique))
            unique.append((question, metadata, question_id))
            continue
        row_jobs.append(made[0])
        shared[number] = SharedRow(
            shared_with=made[1],
            question=question,
            metadata=metadata,
            question_id=question_id,
        )
    return unique, row_jobs, shared


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


__all__ = [
    "CancelResult",
    "Client",
    "JobNotFound",
    "Submission",
    "cancel",
    "get",
    "submit",
    "wait",
]
