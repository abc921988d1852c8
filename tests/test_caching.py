"""A worker process fetches the prompt and the tool list once, not per job (nor per turn), even
when its first jobs all start together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentq.jobs import JobStatus
from tests.conftest import TOKEN_A, Double, FreshWorker, Stack, own_stack, start_mcp_double


@pytest.fixture
def mcp(service_dir: Path) -> Iterator[Double]:
    """An MCP double of this test's own: every call it records is this test's worker's."""
    double = start_mcp_double(service_dir, name="mcp-cache")
    yield double
    double.service.stop()


def test_later_jobs_send_only_discover_and_their_tool_calls(
    stack: Stack, mcp: Double, fresh_worker: FreshWorker
) -> None:
    cached = own_stack(stack, 1, "cache-tests", AGENTQ_MCP_URL=f"{mcp.url}/mcp")
    fresh_worker(cached)  # a fresh process: nothing fetched, nothing proven yet
    client = cached.client()

    def run(count: int) -> Counter[str]:
        before = len(mcp.calls())
        ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(count)]
        for job_id in ids:
            assert client.wait(job_id, TOKEN_A, timeout=60).status == JobStatus.SUCCEEDED
        return Counter(call["method"] for call in mcp.calls()[before:])

    cold = run(8)  # submitted together: 8 jobs start at once in a fresh process
    later = run(4)
    # One job fetched the prompt and the tool list and proved the token (a tools/call of its
    # own); the others waited for it.
    assert cold == Counter(
        {"server/discover": 8, "tools/call": 8 + 1, "prompts/get": 1, "tools/list": 1}
    )
    assert later == Counter({"server/discover": 4, "tools/call": 4})
