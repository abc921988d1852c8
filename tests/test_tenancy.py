"""Multi-tenant safety with real workers: fair scheduling, shared rate limits, read-only tools.

Each test that needs its own worker settings runs in its own Redis database and queue (or on a
shared stack of ``tests/conftest.py`` with those settings), so the session's worker neither takes
its jobs nor counts in its dispatch window.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents.mcp import MCPServerStreamableHttp

from agentq.audit import tenant_id
from agentq.errors import JobNotFound
from agentq.jobs import JobStatus
from agentq.logs import configure_logging
from doubles.processes import wait_until
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    Double,
    FreshWorker,
    Stack,
    own_stack,
    start_mcp_double,
)

RATE_LIMIT_CODE = -32000


async def list_tools_burst(url: str, count: int) -> None:
    """``count`` clients at once, each connecting and listing tools (2 requests each): sent one
    after another on a loaded machine they could stay under the limit."""

    async def one() -> None:
        server = MCPServerStreamableHttp(
            params={"url": url, "headers": {"Authorization": f"Bearer {TOKEN_A}"}},
            cache_tools_list=False,
        )
        with contextlib.suppress(Exception):
            async with server:
                await server.list_tools()

    await asyncio.gather(*(one() for _ in range(count)))


def test_a_single_question_overtakes_another_tenants_backlog(
    stack: Stack, slow_model: Double, fresh_worker: FreshWorker
) -> None:
    fair = own_stack(
        stack,
        4,
        "fairness-tests",
        AGENTQ_WORKER_CONCURRENCY="4",
        OPENAI_BASE_URL=f"{slow_model.url}/v1",
    )
    client = fair.client()
    worker = fresh_worker(fair)
    try:
        backlog = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(300)]
        lone = client.submit("Which sites are there?", TOKEN_B)
        job = client.wait(lone, TOKEN_B, timeout=60)
        assert job.status == JobStatus.SUCCEEDED
        assert job.started_at is not None
        waited = job.started_at - job.created_at
        statuses = client.store.statuses(backlog)
        not_started = sum(1 for s in statuses.values() if s == JobStatus.QUEUED)
        print(
            f"\nfairness: B's question started {waited:.2f}s after submit, "
            f"with {not_started}/300 of A's jobs still waiting"
        )
        # Strict FIFO would have run ~300 of A's jobs (about 30 s here) before B's.
        assert waited < 5.0
        assert not_started > 200
    finally:
        for job_id in backlog:
            client.cancel(job_id, TOKEN_A)
        worker.stop()


def test_a_tenant_never_has_more_jobs_in_flight_than_its_cap(capped: Stack) -> None:
    client = capped.client()  # a tenant cap of 3, 10 slots, the slow model
    ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(12)]
    peak = 0

    def all_done() -> bool:
        nonlocal peak
        statuses = client.store.statuses(ids).values()
        peak = max(peak, sum(1 for s in statuses if s == JobStatus.RUNNING))
        peak = max(peak, client.dispatcher.inflight(client.sealer.fingerprint(TOKEN_A)))
        return all(s == JobStatus.SUCCEEDED for s in statuses)

    wait_until(all_done, 60, interval=0.02, what="the capped tenant's jobs")
    assert 1 <= peak <= 3
    assert client.dispatcher.inflight(client.sealer.fingerprint(TOKEN_A)) == 0


@pytest.fixture
def rate_mcp(service_dir: Path) -> Iterator[Double]:
    """An MCP double of the test's own, to be given a rate limit of its own."""
    double = start_mcp_double(service_dir, name="mcp-rate")
    yield double
    double.service.stop()


def test_the_shared_mcp_rate_limit_keeps_the_server_under_its_own(
    stack: Stack, rate_mcp: Double, fresh_worker: FreshWorker
) -> None:
    mcp = rate_mcp
    mcp.configure(rate_limit_rps=20, rate_limit_burst=4)
    # The double does reject a burst beyond its limit (the test would mean nothing otherwise).
    asyncio.run(list_tools_burst(f"{mcp.url}/mcp", 12))
    assert any(c.get("error_code") == RATE_LIMIT_CODE for c in mcp.calls())
    mcp.reset(rate_limit_rps=20, rate_limit_burst=4)

    limited = own_stack(
        stack,
        5,
        "rate-tests",
        AGENTQ_WORKER_CONCURRENCY="20",
        AGENTQ_MCP_URL=f"{mcp.url}/mcp",
        AGENTQ_MCP_MAX_REQUESTS_PER_SECOND="16",
    )
    client = limited.client()
    worker = fresh_worker(limited)
    started = time.monotonic()
    ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(100)]

    def all_ended() -> bool:
        return all(s in ("succeeded", "failed") for s in client.store.statuses(ids).values())

    wait_until(all_ended, 120, interval=0.2, what="100 rate-limited jobs")
    elapsed = time.monotonic() - started
    worker.stop()
    statuses = client.store.statuses(ids)
    calls = mcp.calls()
    rejected = [c for c in calls if c.get("error_code") == RATE_LIMIT_CODE]
    print(f"\nrate limit: {len(calls)} MCP requests in {elapsed:.1f}s, {len(rejected)} rejected")
    assert rejected == []
    assert all(s == "succeeded" for s in statuses.values()), statuses
    assert len(calls) / elapsed <= 20


def test_write_tools_are_not_offered_by_default(
    stack: Stack, worker: object, model_double: Double
) -> None:
    client = stack.client()
    model_double.reset()
    job = client.wait(client.submit("Which devices are there?", TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED
    offered = {name for call in model_double.calls() for name in call["tools_offered"]}
    assert "query_graphql" in offered
    assert "get_nodes" in offered
    assert not offered & {"node_upsert", "node_delete", "mutate_graphql", "propose_changes"}


def test_write_tools_only_when_asked_and_allowed(roomy: Stack, model_double: Double) -> None:
    client = roomy.client()  # AGENTQ_ALLOW_WRITE_TOOLS=true
    model_double.reset()
    plain = client.wait(client.submit("Which devices?", TOKEN_A), TOKEN_A, timeout=60)
    read_only = {n for c in model_double.calls() for n in c["tools_offered"]}
    model_double.reset()
    asked = client.submit("Which devices?", TOKEN_A, allow_writes=True)
    writes = client.wait(asked, TOKEN_A, timeout=60)
    offered = {n for c in model_double.calls() for n in c["tools_offered"]}
    assert plain.status == writes.status == JobStatus.SUCCEEDED
    assert "node_upsert" not in read_only
    assert {"node_upsert", "mutate_graphql"} <= offered
    assert writes.allow_writes is True


def test_the_audit_log_names_tenant_action_and_job_never_the_token(
    stack: Stack, redis_client: object
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    client = own_stack(stack, 8, "audit-tests").client()
    job_id = client.submit("Which sites?", TOKEN_A)
    client.get(job_id, TOKEN_A)
    with pytest.raises(JobNotFound):
        client.get(job_id, TOKEN_B)
    client.cancel(job_id, TOKEN_A)
    events = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    audits = [e for e in events if e.get("logger") == "agentq.audit"]
    actions = [(e["action"], e["job_id"], e["tenant"]) for e in audits]
    alice = tenant_id(client.sealer.fingerprint(TOKEN_A))
    bob = tenant_id(client.sealer.fingerprint(TOKEN_B))
    assert actions == [
        ("job.submit", job_id, alice),
        ("job.read", job_id, alice),
        ("job.read.refused", job_id, bob),
        ("job.cancel", job_id, alice),
    ]
    assert TOKEN_A not in stream.getvalue() and TOKEN_B not in stream.getvalue()


@pytest.fixture
def slower_model(slow_model: Double) -> Iterator[Double]:
    """The shared slow model double at 300 ms a request, with no calls recorded yet."""
    slow_model.reset(latency_ms=300)
    yield slow_model
    slow_model.reset()


def test_model_requests_stay_under_the_shared_concurrency_limit(
    stack: Stack, slower_model: Double, fresh_worker: FreshWorker
) -> None:
    model = slower_model
    limited = own_stack(
        stack,
        3,
        "model-limit-tests",
        AGENTQ_WORKER_CONCURRENCY="10",
        AGENTQ_MODEL_MAX_CONCURRENCY="2",
        OPENAI_BASE_URL=f"{model.url}/v1",
    )
    fresh_worker(limited)
    client = limited.client()
    ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(8)]
    for job_id in ids:
        assert client.wait(job_id, TOKEN_A, timeout=90).status == JobStatus.SUCCEEDED
    arrivals = sorted(call["t"] for call in model.calls())
    # Each call takes 300 ms; with at most 2 open, no 3 calls can start within 300 ms.
    assert len(arrivals) >= 16
    tightest = min(later - first for first, later in zip(arrivals, arrivals[2:], strict=False))
    assert tightest >= 0.25, tightest
