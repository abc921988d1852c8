"""The job store against a real redis-server."""

from __future__ import annotations

import pytest
import redis

from agentq.errors import JobNotFound, ServiceUnavailable
from agentq.jobs import Job, JobError, JobStatus, Usage
from agentq.sealing import TokenSealer, generate_key
from agentq.store import JobStore, connect, redact_url
from agentq.traces import AttemptTrace, Step, Totals
from doubles.processes import free_port

TTL = 3600


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(connect(redis_url), TTL, redis_url)


def new_job(question: str = "how many devices?") -> Job:
    return Job.new(question, owner="f" * 32, metadata={"source": "test"})


def test_create_and_load_round_trip_with_ttl(store: JobStore, redis_client: redis.Redis) -> None:
    job = new_job()
    store.create(job)
    loaded = store.load(job.id)
    assert loaded == job
    ttl = redis_client.ttl(JobStore.job_key(job.id))
    assert 0 < ttl <= TTL


def test_transitions_are_guarded(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    running = store.start_attempt(job.id)
    assert running is not None
    assert running.status == JobStatus.RUNNING
    assert running.attempts == 1
    assert running.started_at is not None
    usage = Usage(requests=2, input_tokens=10, output_tokens=5, total_tokens=15)
    assert store.finish(job.id, JobStatus.SUCCEEDED, answer="42", usage=usage, model="m")
    # A late or redelivered message can neither restart nor re-finish the job.
    assert store.start_attempt(job.id) is None
    assert not store.finish(
        job.id, JobStatus.FAILED, error=JobError(code="internal", message="late")
    )
    done = store.load(job.id)
    assert done is not None
    assert done.status == JobStatus.SUCCEEDED
    assert done.answer == "42"
    assert done.usage == usage
    assert done.error is None
    assert done.attempts == 1
    assert done.finished_at is not None and done.finished_at >= done.created_at


def test_unknown_job(store: JobStore) -> None:
    assert store.load("nope") is None
    assert store.start_attempt("nope") is None
    assert not store.finish("nope", JobStatus.FAILED)


def test_load_owned_hides_other_owners_jobs(store: JobStore) -> None:
    sealer = TokenSealer(generate_key())
    job = Job.new("q", owner=sealer.fingerprint("token-a"))
    store.create(job)
    assert store.load_owned(job.id, "token-a", sealer).id == job.id
    with pytest.raises(JobNotFound) as other:
        store.load_owned(job.id, "token-b", sealer)
    with pytest.raises(JobNotFound) as missing:
        store.load_owned("0" * 32, "token-b", sealer)
    assert str(other.value).replace(job.id, "ID") == str(missing.value).replace("0" * 32, "ID")


def test_trace_attempts_are_appended_in_order(store: JobStore, redis_client: redis.Redis) -> None:
    job = new_job()
    store.create(job)
    for attempt in (2, 1):
        steps = [Step(kind="model_call", input_tokens=attempt, output_tokens=1)]
        store.append_attempt(
            job.id,
            AttemptTrace(
                attempt=attempt,
                started_at=1.0,
                finished_at=2.0,
                outcome="failed" if attempt == 1 else "succeeded",
                steps=steps,
                totals=Totals.of(steps, 1000),
            ),
        )
    trace = store.load_trace(job.id)
    assert trace is not None
    assert [a.attempt for a in trace.attempts] == [1, 2]
    assert trace.totals.input_tokens == 3
    assert trace.totals.model_calls == 2
    assert 0 < redis_client.ttl(JobStore.trace_key(job.id)) <= TTL


def test_unreachable_redis_is_one_clear_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    store = JobStore(connect(url, timeout=1), TTL, url)
    with pytest.raises(ServiceUnavailable) as caught:
        store.load("x")
    message = str(caught.value)
    assert message.startswith("cannot reach Redis at redis://:***@127.0.0.1:")
    assert "hunter2" not in message
    assert "\n" not in message


def test_redact_url_keeps_urls_without_password() -> None:
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("redis://user:pw@h:1/2") == "redis://user:***@h:1/2"
