"""Multi-tenant safety with real workers: fair scheduling, shared rate limits, read-only tools.

Each test that needs its own worker settings runs in its own Redis database and queue, so the
session's worker neither takes its jobs nor counts in its dispatch window.
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
    Stack,
    own_stack,
    start_mcp_double,
    start_model_double,
    start_worker,
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


@pytest.fixture
def slow_model(service_dir: Path) -> Iterator[Double]:
    double = start_model_double(service_dir, "--latency-ms", "150")
    yield double
    double.service.stop()


def test_a_single_question_overtakes_another_tenants_backlog(
    stack: Stack, service_dir: Path, slow_model: Double
) -> None:
    fair = own_stack(
        stack,
        4,
        "fairness-tests",
        AGENTQ_WORKER_CONCURRENCY="4",
        OPENAI_BASE_URL=f"{slow_model.url}/v1",
    )
    client = fair.client()
    worker = start_worker(fair, service_dir)
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


def test_a_tenant_never_has_more_jobs_in_flight_than_its_cap(
    stack: Stack, service_dir: Path, slow_model: Double
) -> None:
    capped = own_stack(
        stack,
        7,
        "cap-tests",
        AGENTQ_WORKER_CONCURRENCY="10",
        AGENTQ_TENANT_MAX_INFLIGHT="3",
        OPENAI_BASE_URL=f"{slow_model.url}/v1",
    )
    client = capped.client()
    worker = start_worker(capped, service_dir)
    try:
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
    finally:
        worker.stop()


def test_the_shared_mcp_rate_limit_keeps_the_server_under_its_own(
    stack: Stack, service_dir: Path
) -> None:
    mcp = start_mcp_double(service_dir, name="mcp-rate")
    try:
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
        worker = start_worker(limited, service_dir)
        try:
            started = time.monotonic()
            ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(100)]

            def all_ended() -> bool:
                return all(
                    s in ("succeeded", "failed") for s in client.store.statuses(ids).values()
                )

            wait_until(all_ended, 120, interval=0.2, what="100 rate-limited jobs")
            elapsed = time.monotonic() - started
        finally:
            worker.stop()
        statuses = client.store.statuses(ids)
        calls = mcp.calls()
        rejected = [c for c in calls if c.get("error_code") == RATE_LIMIT_CODE]
        print(
            f"\nrate limit: {len(calls)} MCP requests in {elapsed:.1f}s, {len(rejected)} rejected"
        )
        assert rejected == []
        assert all(s == "succeeded" for s in statuses.values()), statuses
        assert len(calls) / elapsed <= 20
    finally:
        mcp.service.stop()


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


def test_write_tools_only_when_asked_and_allowed(
    stack: Stack, service_dir: Path, model_double: Double
) -> None:
    writable = own_stack(stack, 6, "write-tests", AGENTQ_ALLOW_WRITE_TOOLS="true")
    client = writable.client()
    worker = start_worker(writable, service_dir)
    try:
        model_double.reset()
        plain = client.wait(client.submit("Which devices?", TOKEN_A), TOKEN_A, timeout=60)
        read_only = {n for c in model_double.calls() for n in c["tools_offered"]}
        model_double.reset()
        asked = client.submit("Which devices?", TOKEN_A, allow_writes=True)
        writes = client.wait(asked, TOKEN_A, timeout=60)
        offered = {n for c in model_double.calls() for n in c["tools_offered"]}
    finally:
        worker.stop()
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


def test_model_requests_stay_under_the_shared_concurrency_limit(
    stack: Stack, service_dir: Path
) -> None:
    model = start_model_double(service_dir, "--latency-ms", "300")
    limited = own_stack(
        stack,
        3,
        "model-limit-tests",
        AGENTQ_WORKER_CONCURRENCY="10",
        AGENTQ_MODEL_MAX_CONCURRENCY="2",
        OPENAI_BASE_URL=f"{model.url}/v1",
    )
    worker = start_worker(limited, service_dir)
    try:
        client = limited.client()
        ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(8)]
        for job_id in ids:
            assert client.wait(job_id, TOKEN_A, timeout=90).status == JobStatus.SUCCEEDED
        arrivals = sorted(call["t"] for call in model.calls())
    finally:
        worker.stop()
        model.service.stop()
    # Each call takes 300 ms; with at most 2 open, no 3 calls can start within 300 ms.
    assert len(arrivals) >= 16
    tightest = min(later - first for first, later in zip(arrivals, arrivals[2:], strict=False))
    assert tightest >= 0.25, tightest
