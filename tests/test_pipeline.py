"""End to end: CLI and Python API -> Redis -> a real Celery worker -> MCP and model doubles.

What the job's result and trace say is checked against what the doubles themselves saw.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest

from agentq.errors import JobNotFound
from agentq.jobs import JobStatus
from agentq.token_proof import PROOF_ARGUMENTS
from tests.conftest import (
    ONE_TOOL_STEPS,
    TOKEN_A,
    TOKEN_B,
    TOKEN_BAD,
    CliRunner,
    Double,
    Stack,
)

QUESTION = "List every schema kind whose name starts with Dcim"


@pytest.fixture(autouse=True)
def fresh_doubles(mcp_double: Double, model_double: Double) -> None:
    mcp_double.reset()
    model_double.reset()


def tool_calls_seen(double: Double) -> list[dict[str, Any]]:
    """The agents' tool calls (not the workers' token proofs)."""
    return [
        c
        for c in double.calls()
        if c["method"] == "tools/call" and c.get("arguments") != PROOF_ARGUMENTS
    ]


def model_stats(double: Double) -> dict[str, Any]:
    response = httpx.get(f"{double.url}/_double/stats", timeout=5)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


@pytest.mark.usefixtures("worker")
def test_cli_submit_wait_result_trace(
    cli: CliRunner, mcp_double: Double, model_double: Double
) -> None:
    submitted = cli("submit", QUESTION, token=TOKEN_A)
    assert submitted.code == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)

    waited = cli("wait", job_id, "--timeout", "60", token=TOKEN_A)
    assert waited.code == 0, waited.stderr
    assert "DcimDevice" in waited.stdout
    assert "[offline demo model]" in waited.stdout

    status = cli("status", job_id, "--json", token=TOKEN_A).json()
    assert status["status"] == "succeeded"
    assert status["attempts"] == 1
    assert status["timings"]["run_seconds"] > 0

    result = cli("result", job_id, "--json", token=TOKEN_A).json()
    assert result["status"] == "succeeded"
    assert result["error"] is None
    assert result["answer"] == waited.stdout.strip()
    assert result["usage"]["requests"] == 2

    trace = cli("trace", job_id, "--json", token=TOKEN_A).json()
    assert trace["version"] == 1
    (attempt,) = trace["attempts"]
    kinds = [step["kind"] for step in attempt["steps"]]
    assert kinds == ONE_TOOL_STEPS
    assert "get_schema" in attempt["steps"][1]["tools"]
    by_method = Counter(c["method"] for c in mcp_double.calls())
    assert len(tool_calls_seen(mcp_double)) == 1
    assert by_method["tools/list"] <= 2, by_method

    # The tool calls in the trace are the ones the MCP server received, arguments and all.
    seen = tool_calls_seen(mcp_double)
    traced = [s for s in attempt["steps"] if s["kind"] == "tool_call"]
    assert [(s["tool"], s["arguments"]) for s in traced] == [
        (c["tool"], c["arguments"]) for c in seen
    ]
    assert traced[0]["tool"] == "get_schema"
    assert traced[0]["is_error"] is False
    assert traced[0]["result_bytes"] > 0
    assert "DcimDevice" in traced[0]["result_excerpt"]
    assert all(c["auth"] == "ok" for c in mcp_double.calls())

    # The tokens in the result and the trace are the ones the model server counted.
    stats = model_stats(model_double)
    assert result["usage"]["input_tokens"] == stats["input_tokens"] > 0
    assert result["usage"]["output_tokens"] == stats["output_tokens"] > 0
    assert trace["totals"]["input_tokens"] == stats["input_tokens"]
    assert trace["totals"]["model_calls"] == 2

    text_trace = cli("trace", job_id, token=TOKEN_A)
    assert text_trace.code == 0
    assert "get_schema" in text_trace.stdout
    assert "totals: 2 model calls, 1 tool calls" in text_trace.stdout


@pytest.mark.usefixtures("worker")
def test_python_api_many_jobs_at_once(stack: Stack, mcp_double: Double) -> None:
    client = stack.client()
    questions = {
        "Which devices are in site atl1?": ("get_nodes", "DcimDevice"),
        "What IP prefixes do we have?": ("get_nodes", "IpamPrefix"),
        "Show the interfaces of our devices": ("get_nodes", "InterfacePhysical"),
        QUESTION: ("get_schema", None),
    }
    ids = {client.submit(q, TOKEN_A): q for q in questions}
    assert len(ids) == len(questions)
    for job_id, question in ids.items():
        job = client.wait(job_id, TOKEN_A, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.answer and job.answer.startswith("[offline demo model]")
        trace = client.trace(job_id, TOKEN_A)
        (tool_step,) = [s for s in trace.attempts[0].steps if s.kind == "tool_call"]
        tool, kind = questions[question]
        assert tool_step.tool == tool
        if kind is not None:
            assert tool_step.arguments["kind"] == kind
    assert "atl1" in str([c["arguments"] for c in tool_calls_seen(mcp_double)])


@pytest.mark.usefixtures("worker")
def test_prompt_is_fetched_and_cached_per_process(stack: Stack, mcp_double: Double) -> None:
    client = stack.client()
    ids = [client.submit(f"What platform is device {n}?", TOKEN_A) for n in range(3)]
    for job_id in ids:
        assert client.wait(job_id, TOKEN_A, timeout=60).status == JobStatus.SUCCEEDED
    prompt_gets = [c for c in mcp_double.calls() if c["method"] == "prompts/get"]
    # The worker fetched it before these jobs (earlier test) or once now: never once per job.
    assert len(prompt_gets) <= 1
    steps = client.trace(ids[-1], TOKEN_A).attempts[0].steps
    assert steps[0].kind == "token_check" and steps[0].result_excerpt == "(cached)"
    assert steps[1].kind == "list_tools" and steps[1].result_excerpt == "(cached)"
    assert steps[2].kind == "prompt" and steps[2].name == "infrahub_agent"
    assert steps[2].result_bytes and steps[2].result_bytes > 100


@pytest.mark.usefixtures("worker")
def test_other_tokens_cannot_see_a_job(cli: CliRunner, stack: Stack) -> None:
    job_id = cli("submit", QUESTION, token=TOKEN_A).stdout.strip()
    client = stack.client()
    assert client.wait(job_id, TOKEN_A, timeout=60).status == JobStatus.SUCCEEDED
    missing_id = "f" * 32
    for command in ("status", "result", "wait", "trace"):
        theirs = cli(command, job_id, token=TOKEN_B)
        nobodys = cli(command, missing_id, token=TOKEN_B)
        assert theirs.code == nobodys.code == 2
        assert theirs.stdout == nobodys.stdout == ""
        assert theirs.stderr.replace(job_id, "ID") == nobodys.stderr.replace(missing_id, "ID")
    for read in (client.get, client.trace):
        with pytest.raises(JobNotFound):
            read(job_id, TOKEN_B)


@pytest.mark.usefixtures("worker")
def test_rejected_token_fails_at_once_with_auth_error(stack: Stack, mcp_double: Double) -> None:
    client = stack.client()
    job_id = client.submit(QUESTION, TOKEN_BAD)
    job = client.wait(job_id, TOKEN_BAD, timeout=30)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == "auth_error"
    assert job.attempts == 1
    assert job.run_seconds is not None and job.run_seconds < 2
    assert TOKEN_BAD not in job.error.message
    assert any(c["auth"] == "bad" for c in mcp_double.calls())


def test_rejected_token_behind_real_server_auth(proving: Stack, passthrough_mcp: Double) -> None:
    """Behind an MCP double that checks tokens like the real server does."""
    passthrough_mcp.reset()
    client = proving.client()
    job = client.wait(client.submit(QUESTION, TOKEN_BAD), TOKEN_BAD, timeout=30)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == "auth_error", job.error
    assert "Invalid token" in job.error.message  # Infrahub's own words, passed on
    # The real server lets the handshake through and fails the token check's read itself; the
    # agent never ran.
    calls = [c for c in passthrough_mcp.calls() if c["method"] == "tools/call"]
    assert [(c["tool"], c["auth"]) for c in calls] == [("query_graphql", "bad")]
    passthrough_mcp.reset()
    good = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=30)
    assert good.status == JobStatus.SUCCEEDED, good.error


def test_responses_api(responses_worker: Stack, model_double: Double) -> None:
    client = responses_worker.client()
    job = client.wait(client.submit(QUESTION, TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.answer and "DcimDevice" in job.answer
    apis = {c["api"] for c in model_double.calls()}
    assert apis == {"responses"}
    assert job.usage is not None
    assert job.usage.input_tokens == model_stats(model_double)["input_tokens"] > 0


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("style", ["jsonrpc", "isError"])
def test_tool_errors_go_to_the_model_and_are_flagged_in_the_trace(
    stack: Stack, mcp_double: Double, model_double: Double, style: str
) -> None:
    """A bad kind is the model's to fix: the run goes on, and the trace marks the failed call."""
    mcp_double.configure(error_style=style)
    model_double.configure(
        policy="script",
        script=[
            {"tool": "get_nodes", "arguments": {"kind": "DcimDevise"}},
            {"tool": "get_nodes", "arguments": {"kind": "DcimDevice"}},
            {"text": "found them after fixing the kind"},
        ],
    )
    client = stack.client()
    job = client.wait(client.submit("Which devices?", TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.answer == "found them after fixing the kind"
    steps = [s for s in client.trace(job.id, TOKEN_A).attempts[0].steps if s.kind == "tool_call"]
    assert [s.arguments["kind"] for s in steps] == ["DcimDevise", "DcimDevice"]
    assert [s.is_error for s in steps] == [True, False]
    assert "DcimDevise" in (steps[0].error or "") + (steps[0].result_excerpt or "")
    assert client.trace(job.id, TOKEN_A).totals.tool_errors == 1
