"""A token the MCP server or Infrahub echoes back is scrubbed from everything a job records.

The MCP double's ``echo_token`` knob puts the request's bearer token into tool results
(``"debug_token"``) and tool error texts; a real worker runs the jobs. These jobs live in the
session's Redis, so the suite's last test (``test_token_absence``) scans them as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentq.jobs import JobStatus
from agentq.logs import REDACTED
from agentq.store import JobStore
from tests.conftest import ECHOED_JOB_IDS, TOKEN_A, TOKEN_BAD, CliRunner, Double, Stack
from tests.test_token_absence import redis_dump

SCHEMA_QUESTION = "List every schema kind whose name starts with Dcim"


@pytest.fixture(autouse=True)
def fresh_doubles(mcp_double: Double, model_double: Double) -> Iterator[None]:
    mcp_double.reset()
    model_double.reset()
    yield
    mcp_double.reset()  # the session's other tests expect a double that echoes nothing


def recorded(client: redis.Redis, job_id: str) -> str:
    """Everything Redis holds about the job: its record (history included) and its trace."""
    dump = redis_dump(client, match=f"*{job_id}*")
    assert JobStore.job_key(job_id) in dump and JobStore.trace_key(job_id) in dump
    return dump


def run_job(
    stack: Stack, cli: CliRunner, token: str
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """Run a job, then read its result and trace back as JSON through the real CLI."""
    client = stack.client()
    job_id = client.submit(SCHEMA_QUESTION, token)
    ECHOED_JOB_IDS.append(job_id)
    client.wait(job_id, token, timeout=60)
    result = cli("result", job_id, "--json", token=token)
    trace = cli("trace", job_id, "--json", token=token)
    assert trace.code == 0 and result.stdout, result.stderr + trace.stderr  # a failed job: exit 1
    return (
        job_id,
        result.json(),
        trace.json(),
        "\n".join(r.stdout + r.stderr for r in (result, trace)),
    )


def prove_now(stack: Stack, token: str) -> None:
    """Run a plain job, so the worker's proof of ``token`` is fresh: the next job's token check
    then sends nothing (a proof lasts ``AGENTQ_TOKEN_PROOF_SECONDS``, 300 s; a slow suite could
    outlast the one an earlier test made, and the injected fault would hit the proof instead)."""
    client = stack.client()
    job = client.wait(client.submit(SCHEMA_QUESTION, token), token, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("where", ["tool_result", "tool_error"])
def test_echoed_token_is_scrubbed_from_a_succeeding_job(
    stack: Stack, cli: CliRunner, mcp_double: Double, redis_client: redis.Redis, where: str
) -> None:
    if where == "tool_result":
        mcp_double.configure(echo_token=True)
    else:
        # An older server's isError result goes to the model verbatim; the model then quotes it.
        prove_now(stack, TOKEN_A)
        mcp_double.configure(echo_token=True, error_style="isError", fault="tool_error")
    job_id, result, trace, printed = run_job(stack, cli, TOKEN_A)
    assert result["status"] == JobStatus.SUCCEEDED, result

    (step,) = [s for s in trace["attempts"][0]["steps"] if s["kind"] == "tool_call"]
    if where == "tool_result":
        # The echo happened, and only its redaction was kept.
        assert f'"debug_token":"{REDACTED}"' in step["result_excerpt"]
    else:
        assert step["is_error"] is True
        assert f"token '{REDACTED}' rejected" in step["error"]
        assert f"token '{REDACTED}' rejected" in result["answer"]
    for text in (recorded(redis_client, job_id), printed):
        assert TOKEN_A not in text


@pytest.mark.usefixtures("worker")
def test_echoed_token_is_scrubbed_from_a_failing_jobs_error(
    stack: Stack, cli: CliRunner, mcp_double: Double, redis_client: redis.Redis
) -> None:
    """Behind the real server's token passthrough, Infrahub's refusal quotes the token."""
    mcp_double.configure(echo_token=True, auth_mode="passthrough")
    job_id, result, trace, printed = run_job(stack, cli, TOKEN_BAD)
    assert result["status"] == JobStatus.FAILED, result
    error = result["error"]
    assert error["code"] == "auth_error"
    assert "Invalid token" in error["message"]  # Infrahub's refusal, passed on
    assert f"token '{REDACTED}' rejected" in error["message"]
    (attempt,) = trace["attempts"]
    assert attempt["error_message"] == error["message"]
    for text in (recorded(redis_client, job_id), printed):
        assert TOKEN_BAD not in text
