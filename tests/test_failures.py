"""Failure classification and backoff: pure functions, checked against the real server's shapes."""

from __future__ import annotations

import random

import openai
import pytest
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, UserError

from agentq.errors import AgentqError, ErrorCode
from worker.failures import JobContext, classify, classify_tool_failure, tool_error_message
from worker.retries import backoff_bound, retry_delay
from worker.tool_bridge import failed, run_ending

# Messages as infrahub-mcp 1.2.0 sends them (../shared/reference/infrahub-mcp.md).
REAL_SERVER_FAILURES = [
    (
        "Internal error: Client error '401 Unauthorized' for url "
        "'http://infrahub:8000/api/schema?branch=main'",
        ErrorCode.AUTH_ERROR,
    ),
    ("Authentication required: no Infrahub API token in request header.", ErrorCode.AUTH_ERROR),
    ("Global rate limit exceeded", ErrorCode.RATE_LIMITED),
    ("Internal error: Unable to connect to 'http://infrahub:8000'", ErrorCode.MCP_UNAVAILABLE),
    ("Connection closed", ErrorCode.MCP_UNAVAILABLE),
    (
        "Failed to call tool 'get_nodes' on MCP server 'infrahub': HTTP error 503",
        ErrorCode.MCP_UNAVAILABLE,
    ),
    (
        "Failed to call tool 'get_nodes' on MCP server 'infrahub': HTTP error 429",
        ErrorCode.RATE_LIMITED,
    ),
    ("Failed to call tool 'x' on MCP server 'infrahub': HTTP error 403", ErrorCode.AUTH_ERROR),
    ("Timed out while waiting for response to ClientRequest", ErrorCode.TIMEOUT),
]

# Errors the model can act on: they go back to it, the run goes on.
MODEL_ACTIONABLE = [
    "Internal error: Unknown kind 'DcimDevise'. Remediation: read infrahub://schema for kinds",
    "Invalid params",
    "Not found: Unknown tool",
    "Internal error: Response over 500000 bytes. Remediation: narrow the filters",
]


@pytest.mark.parametrize(("message", "code"), REAL_SERVER_FAILURES)
def test_run_ending_tool_failures(message: str, code: ErrorCode) -> None:
    failure = classify_tool_failure(Exception(message))
    assert failure is not None
    assert failure.code == code


@pytest.mark.parametrize("message", MODEL_ACTIONABLE)
def test_actionable_tool_errors_go_back_to_the_model(message: str) -> None:
    context = JobContext(job_id="j", attempt=1)
    assert run_ending(Exception(message), context) is None
    text = failed(context, tool_error_message(Exception(message)))
    assert text.startswith("Tool error: ")
    assert context.failure is None
    assert context.tool_errors


def test_a_run_ending_tool_failure_is_the_one_the_job_recorded_first() -> None:
    context = JobContext(job_id="j", attempt=1)
    ending = run_ending(Exception("Connection closed"), context)
    assert ending is not None and ending.code == ErrorCode.MCP_UNAVAILABLE
    # A rejected token the response hook recorded wins over what the call raised after it.
    rejected = context.record(AgentqError("rejected", code=ErrorCode.AUTH_ERROR))
    assert run_ending(Exception("Connection closed"), context) is rejected
    # Whatever the SDK then raises, the recorded failure is the verdict.
    assert classify(RuntimeError("something else"), context) is rejected


def test_classify_finds_our_error_inside_wrappers() -> None:
    inner = AgentqError("nope", code=ErrorCode.AUTH_ERROR)
    try:
        try:
            raise inner
        except AgentqError as exc:
            raise UserError("wrapped") from exc
    except UserError as outer:
        group = BaseExceptionGroup("g", [outer])
    assert classify(group).code == ErrorCode.AUTH_ERROR


def _response(status: int, headers: dict[str, str] | None = None) -> object:
    import httpx2

    request = httpx2.Request("POST", "http://model/v1/chat/completions")
    return httpx2.Response(status, headers=headers or {}, request=request)


def test_classify_model_failures() -> None:
    limited = openai.RateLimitError(
        "slow down",
        response=_response(429, {"retry-after": "7"}),
        body=None,  # type: ignore[arg-type]
    )
    failure = classify(limited)
    assert failure.code == ErrorCode.RATE_LIMITED and failure.retry_after == 7.0
    assert failure.transient
    server = openai.InternalServerError("boom", response=_response(500), body=None)  # type: ignore[arg-type]
    assert classify(server).code == ErrorCode.MODEL_UNAVAILABLE
    denied = openai.AuthenticationError("bad key", response=_response(401), body=None)  # type: ignore[arg-type]
    assert classify(denied).code == ErrorCode.CONFIG_ERROR
    assert not classify(denied).transient
    assert classify(MaxTurnsExceeded("too many")).code == ErrorCode.MAX_TURNS
    assert not classify(MaxTurnsExceeded("too many")).transient
    assert classify(ModelBehaviorError("bad tool")).code == ErrorCode.MODEL_ERROR
    assert classify(UserError("Failed to connect to MCP server 'x'")).code == (
        ErrorCode.MCP_UNAVAILABLE
    )


def test_recorded_http_status_beats_a_vague_error() -> None:
    context = JobContext(job_id="j", attempt=1)
    context.last_http_failure = AgentqError("429", code=ErrorCode.RATE_LIMITED, retry_after=3)
    assert classify(RuntimeError("Server returned an error response"), context).code == (
        ErrorCode.RATE_LIMITED
    )


def test_backoff_is_bounded_exponential_with_full_jitter() -> None:
    assert [backoff_bound(n, 1.0, 60.0) for n in (1, 2, 3, 7, 8)] == [1, 2, 4, 60, 60]
    rng = random.Random(7)
    draws = [retry_delay(3, 1.0, 60.0, rng=rng) for _ in range(2000)]
    assert 0 <= min(draws) < 0.1 and 3.9 < max(draws) <= 4.0
    assert 1.8 < sum(draws) / len(draws) < 2.2  # uniform over [0, 4]


def test_retry_after_is_honoured() -> None:
    rng = random.Random(1)
    assert all(retry_delay(1, 1.0, 60.0, retry_after=30, rng=rng) >= 30 for _ in range(100))
    assert retry_delay(1, 1.0, 60.0, retry_after=10**9, rng=rng) == 3600
