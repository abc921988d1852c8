"""Failure handling with real processes: flaky services, killed workers, a restarted Redis,
cancellation, deadlines, max turns and graceful shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from agentq.jobs import JobStatus
from doubles.processes import Service, start_redis, wait_until
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    CliRunner,
    Double,
    FreshWorker,
    Stack,
    own_stack,
    shared_stack,
    start_mcp_double,
)

QUESTION = "Which devices are in site atl1?"

# Quick retries so the tests do not wait for production backoff.
FAST_RETRIES = {
    "AGENTQ_RETRY_BASE_SECONDS": "0.1",
    "AGENTQ_RETRY_CAP_SECONDS": "0.5",
    "AGENTQ_RETRY_MAX_ATTEMPTS": "8",
}


@pytest.fixture(autouse=True)
def fresh_doubles(mcp_double: Double, model_double: Double) -> Iterator[None]:
    mcp_double.reset()
    model_double.reset()
    yield
    mcp_double.reset()
    model_double.reset()


def side(stack: Stack, queue: str, **env: str) -> Stack:
    """The test stack with its own queue (so only its own workers take its jobs)."""
    return Stack(
        env={**stack.env, "AGENTQ_QUEUE": queue, **env}, redis_url=stack.redis_url, logs=stack.logs
    )


fast_stack = shared_stack(
    "fast_stack",
    lambda request: own_stack(
        request.getfixturevalue("stack"),
        24,
        "fast-retries",
        AGENTQ_WORKER_CONCURRENCY="20",
        **FAST_RETRIES,
    ),
)


def test_flaky_mcp_and_model_every_job_succeeds(
    fast_stack: Stack, mcp_double: Double, model_double: Double
) -> None:
    mcp_double.configure(fault="http_503", fault_rate=0.3, seed=11)
    model_double.configure(fault="http_500", fault_rate=0.2, seed=12)
    client = fast_stack.client()
    ids = [client.submit(f"{QUESTION} ({n})", TOKEN_A) for n in range(50)]
    jobs = [client.wait(job_id, TOKEN_A, timeout=240) for job_id in ids]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 50, [
        (j.status, j.error) for j in jobs if j.status != JobStatus.SUCCEEDED
    ]
    traces = [client.trace(job_id, TOKEN_A) for job_id in ids]
    retried_requests = [
        s for t in traces for a in t.attempts for s in a.steps if s.kind == "http_error"
    ]
    retried_jobs = [t for t in traces if len(t.attempts) > 1]
    # Faults were injected and the traces show where they were retried.
    assert retried_requests
    assert {s.server for s in retried_requests} == {"mcp", "model"}
    for trace, job in zip(traces, jobs, strict=True):
        assert len(trace.attempts) == job.attempts == len(job.history)
        assert trace.attempts[-1].outcome == "succeeded"
        assert all(a.outcome == "retrying" for a in trace.attempts[:-1])
    print(
        f"\n50 jobs: {len(retried_requests)} failed requests retried, "
        f"{len(retried_jobs)} jobs needed more than one attempt"
    )


def test_transport_failure_in_a_tool_call_is_retried_not_answered(
    fast_stack: Stack, mcp_double: Double
) -> None:
    mcp_double.configure(fault="drop", fault_methods=["tools/call"], fault_rate=1.0)
    client = fast_stack.client()
    failed = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=120)
    assert failed.status == JobStatus.FAILED, failed.answer
    assert failed.error is not None and failed.error.code == "mcp_unavailable"
    assert failed.answer is None
    history = [(h.outcome, h.error_code, h.error_message) for h in failed.history]
    assert failed.attempts == 8, history  # AGENTQ_RETRY_MAX_ATTEMPTS: every attempt was tried

    mcp_double.configure(fault="drop", fault_methods=["tools/call"], fault_first_n=1)
    job = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    steps = client.trace(job.id, TOKEN_A).attempts[-1].steps
    assert any(s.kind == "http_error" and s.name == "tools/call" for s in steps)


def test_max_turns_is_permanent(fast_stack: Stack, model_double: Double) -> None:
    model_double.configure(policy="always_tool")
    client = fast_stack.client()
    job = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == "max_turns"
    assert job.attempts == 1


def test_deadline_ends_the_run_with_timeout(fast_stack: Stack, model_double: Double) -> None:
    model_double.configure(latency_ms=4000)
    client = fast_stack.client()
    started = time.monotonic()
    job = client.wait(client.submit(QUESTION, TOKEN_A, deadline=1.5), TOKEN_A, timeout=60)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == "timeout"
    assert "deadline" in job.error.message
    assert job.attempts == 1
    assert time.monotonic() - started < 4


def test_cancel_queued_and_running_and_finished(
    stack: Stack, fresh_worker: FreshWorker, model_double: Double, cli: CliRunner
) -> None:
    idle = side(stack, "cancel-tests")
    client = idle.client()
    queued_id = client.submit(QUESTION, TOKEN_A)
    # Only the owner can cancel; others are told the job does not exist.
    other = cli("cancel", queued_id, token=TOKEN_B, AGENTQ_QUEUE="cancel-tests")
    assert other.code == 2 and "not found" in other.stderr
    result = cli("cancel", queued_id, "--json", token=TOKEN_A, AGENTQ_QUEUE="cancel-tests")
    assert result.code == 0, result.stderr
    assert result.json() == {"id": queued_id, "previous_status": "queued", "cancelled": True}

    model_double.configure(latency_ms=30000)
    worker = fresh_worker(idle)  # started after the cancel: the queued job's message waits
    running_id = client.submit(QUESTION, TOKEN_A)
    wait_until(
        lambda: client.get(running_id, TOKEN_A).status == JobStatus.RUNNING,
        30,
        what="the job to run",
    )
    asked = time.monotonic()
    outcome = client.cancel(running_id, TOKEN_A)
    assert outcome.cancelled and outcome.previous == JobStatus.RUNNING
    # The worker stops the run and writes its trace within about 2 seconds.
    wait_until(lambda: bool(client.trace(running_id, TOKEN_A).attempts), 5, what="the stopped run")
    assert time.monotonic() - asked < 2.5
    trace = client.trace(running_id, TOKEN_A)
    assert trace.attempts[0].outcome == "cancelled"
    # The queued job never ran, even with a worker on its queue.
    queued = client.get(queued_id, TOKEN_A)
    assert queued.status == JobStatus.CANCELLED and queued.attempts == 0
    worker.stop()
    running = client.get(running_id, TOKEN_A)
    assert running.status == JobStatus.CANCELLED
    again = cli("cancel", running_id, token=TOKEN_A, AGENTQ_QUEUE="cancel-tests")
    assert again.code == 0
    assert "already ended (cancelled): nothing to cancel" in again.stderr
    assert client.get(running_id, TOKEN_A).finished_at == running.finished_at


def test_worker_killed_mid_run_loses_no_job(
    stack: Stack, fresh_worker: FreshWorker, model_double: Double
) -> None:
    env = {
        **FAST_RETRIES,
        "AGENTQ_HEARTBEAT_TTL_SECONDS": "3",
        "AGENTQ_WORKER_CONCURRENCY": "8",
        "AGENTQ_JOB_DEADLINE_SECONDS": "20",
    }
    killed = side(stack, "kill-tests", **env)
    client = killed.client()
    model_double.configure(latency_ms=700)
    first = fresh_worker(killed)
    ids = [client.submit(f"{QUESTION} #{n}", TOKEN_A) for n in range(20)]
    wait_until(
        lambda: sum(client.get(i, TOKEN_A).status == JobStatus.RUNNING for i in ids) >= 4,
        30,
        what="jobs to be running",
    )
    first.stop(signal.SIGKILL)
    second = fresh_worker(killed)
    jobs = [client.wait(job_id, TOKEN_A, timeout=120) for job_id in ids]
    second.stop()
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 20
    taken_over = [j for j in jobs if j.lost_runs > 0 or j.attempts > 1]
    assert taken_over, "the killed worker's jobs should have been run again"
    for job in jobs:
        assert sum(h.outcome == "succeeded" for h in job.history) == 1


def test_poison_job_that_keeps_killing_workers_is_stopped(
    stack: Stack, fresh_worker: FreshWorker, model_double: Double
) -> None:
    # Its own Redis database: the reaper of whichever worker notices a dead one applies its own
    # AGENTQ_POISON_AFTER, so workers with other settings must not see this job.
    own_db = stack.redis_url.rsplit("/", 1)[0] + "/3"
    env = {
        "AGENTQ_HEARTBEAT_TTL_SECONDS": "2",
        "AGENTQ_POISON_AFTER": "2",
        "AGENTQ_REDIS_URL": own_db,
    }
    poison = Stack(
        env={**stack.env, "AGENTQ_QUEUE": "poison-tests", **env},
        redis_url=own_db,
        logs=stack.logs,
    )
    client = poison.client()
    model_double.configure(latency_ms=60000)
    job_id = client.submit(QUESTION, TOKEN_A)

    def running_on(worker: Service) -> bool:
        job = client.get(job_id, TOKEN_A)
        return job.status == JobStatus.RUNNING and f"agentq-{worker.pid}@" in (job.worker or "")

    for _ in range(2):
        worker = fresh_worker(poison)
        wait_until(partial(running_on, worker), 40, what="the job to run on the new worker")
        worker.stop(signal.SIGKILL)
    last = fresh_worker(poison)
    job = client.wait(job_id, TOKEN_A, timeout=60)
    last.stop()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == "poisoned"


def test_sigterm_lets_short_jobs_finish_and_requeues_long_ones(
    stack: Stack, fresh_worker: FreshWorker, model_double: Double
) -> None:
    graceful = side(stack, "shutdown-tests", AGENTQ_SHUTDOWN_GRACE_SECONDS="3")
    client = graceful.client()
    model_double.configure(latency_ms=10000)
    worker = fresh_worker(graceful)
    job_id = client.submit(QUESTION, TOKEN_A)
    wait_until(
        lambda: client.get(job_id, TOKEN_A).status == JobStatus.RUNNING, 30, what="the job to run"
    )
    stopped_at = time.monotonic()
    code = worker.stop(signal.SIGTERM, timeout=30)
    assert time.monotonic() - stopped_at < 15
    assert code == 0
    job = client.get(job_id, TOKEN_A)
    assert job.status == JobStatus.QUEUED, job
    assert [h.outcome for h in job.history] == ["requeued"]

    model_double.configure(latency_ms=200)
    second = fresh_worker(graceful)
    finished = client.wait(job_id, TOKEN_A, timeout=60)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    # A job that fits in the grace period finishes on the worker being stopped.
    model_double.configure(latency_ms=500)
    quick_id = client.submit(QUESTION, TOKEN_A)
    wait_until(
        lambda: client.get(quick_id, TOKEN_A).status == JobStatus.RUNNING,
        30,
        what="the quick job to run",
    )
    second.stop(signal.SIGTERM, timeout=30)
    quick = client.get(quick_id, TOKEN_A)
    assert quick.status == JobStatus.SUCCEEDED, quick
    assert quick.attempts == 1


def test_redis_restart_with_queued_jobs_loses_nothing(
    stack: Stack,
    service_dir: Path,
    fresh_worker: FreshWorker,
    model_double: Double,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "aof"
    own_redis: Service = start_redis(service_dir, appendonly=True, data_dir=data_dir)
    port = own_redis.port
    url = own_redis.extra["url"]
    durable = Stack(
        env={**stack.env, "AGENTQ_REDIS_URL": url, "AGENTQ_WORKER_CONCURRENCY": "2"},
        redis_url=url,
        logs=stack.logs,
    )
    client = durable.client()
    model_double.configure(latency_ms=300)
    worker = fresh_worker(durable)
    try:
        ids = [client.submit(f"{QUESTION} #{n}", TOKEN_A) for n in range(10)]
        wait_until(
            lambda: any(client.get(i, TOKEN_A).status.terminal for i in ids),
            30,
            what="a first job to finish",
        )
        own_redis.stop(signal.SIGTERM)  # flushes the append-only file
        own_redis = start_redis(service_dir, appendonly=True, data_dir=data_dir, port=port)
        jobs = [client.wait(job_id, TOKEN_A, timeout=180) for job_id in ids]
    finally:
        worker.stop()
        own_redis.stop()
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 10, [
        (j.status, j.error) for j in jobs
    ]


def test_mcp_server_restart_mid_job(
    stack: Stack, service_dir: Path, fresh_worker: FreshWorker, model_double: Double
) -> None:
    own_mcp = start_mcp_double(service_dir, name="mcp-restarting")
    port = own_mcp.service.port
    restarting = side(stack, "mcp-restart", AGENTQ_MCP_URL=f"{own_mcp.url}/mcp", **FAST_RETRIES)
    worker = fresh_worker(restarting)
    client = restarting.client()
    model_double.configure(latency_ms=1500)
    try:
        job_id = client.submit(QUESTION, TOKEN_A)
        wait_until(
            lambda: bool(own_mcp.calls()) and client.get(job_id, TOKEN_A).status == "running",
            30,
            what="the job to talk to the MCP server",
        )
        own_mcp.service.stop()
        own_mcp = start_mcp_double(service_dir, name="mcp-restarted", port=port)
        job = client.wait(job_id, TOKEN_A, timeout=60)
    finally:
        worker.stop()
        own_mcp.service.stop()
    assert job.status == JobStatus.SUCCEEDED, job.error


def test_a_hung_tool_call_times_out_and_the_job_is_retried(
    stack: Stack, fresh_worker: FreshWorker, mcp_double: Double
) -> None:
    quick = side(
        stack,
        "tool-timeout",
        AGENTQ_TOOL_TIMEOUT_SECONDS="1",
        AGENTQ_RETRY_MAX_ATTEMPTS="2",
        AGENTQ_RETRY_BASE_SECONDS="0.1",
    )
    worker = fresh_worker(quick)
    mcp_double.configure(fault="hang", fault_methods=["tools/call"], fault_first_n=1)
    client = quick.client()
    job = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=60)
    worker.stop()
    assert job.status == JobStatus.SUCCEEDED, job.error
    first, second = client.trace(job.id, TOKEN_A).attempts
    assert (first.outcome, first.error_code) == ("retrying", "timeout")
    assert second.outcome == "succeeded"
    assert 1.0 <= first.totals.duration_ms / 1000 < 10
