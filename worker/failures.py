"""Deciding what went wrong in an agent run, in the terms of agentq's error taxonomy.

The Agents SDK hides several failures from its caller: a tool call that failed in transport is
handed to the model as a tool error and the run "succeeds" with an apology; a 401 from the MCP
endpoint loses its status inside an exception group. So failures are caught where they happen:
- the MCP HTTP client's response hook records 401/403/429/5xx answers (with Retry-After);
- each failed tool call is sorted (``worker.tool_bridge``, with ``classify_tool_failure``):
  errors the model can act on (bad arguments, unknown kind) go back to the model; auth and
  transport failures end the run; results flagged ``isError`` are inspected the same way;
and whatever the run then raises is classified with the job's recorded failures first.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import islice

import openai
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, UserError
from mcp.client.session import ClientSession

from agentq.errors import AgentqError, ErrorCode, linked
from agentq.logs import scrubbed_excerpt
from agentq.token_proof import AUTH_REJECTION_TEXT
from agentq.traces import Step


@dataclass
class JobContext:
    """Per-attempt state the SDK hands back to our hooks (``Runner.run(context=...)``)."""

    job_id: str
    attempt: int
    failure: AgentqError | None = None
    last_http_failure: AgentqError | None = None
    stop_reason: str | None = None
    tool_errors: list[str] = field(default_factory=list)
    http_errors: list[Step] = field(default_factory=list)
    # The job's own MCP session (its user's token), on which its bridged tools call
    # (worker.tool_bridge); set once the session is open.
    mcp_session: ClientSession | None = None
    # The attempt's steps as they happen (the token check, the tools, the prompt, then the
    # run's model and tool calls: worker.tracing), and how much of each tool result is kept.
    steps: list[Step] = field(default_factory=list)
    model_started: float | None = None
    excerpt_chars: int = 500
    # Of the model call in progress: the model asked (``worker.fallback_model`` moves on to the
    # next one when a model keeps failing) and the tier that served it, as the provider said
    # (``worker.model_client``); read when the call's step is recorded.
    model: str | None = None
    served_tier: str | None = None

    def http_error(self, service: str, name: str | None, error: str, retried: bool) -> None:
        """Note a failed HTTP exchange for the trace (it may have been retried successfully)."""
        self.http_errors.append(
            Step(
                kind="http_error",
                started_at=time.time(),
                server=service,
                name=name,
                error=error,
                is_error=not retried,
            )
        )

    def record(self, failure: AgentqError) -> AgentqError:
        """Keep the first run-ending failure: later ones are usually its consequences."""
        if self.failure is None:
            self.failure = failure
        return self.failure


_RATE_TEXT = re.compile(r"rate limit", re.IGNORECASE)
_UNREACHABLE_TEXT = re.compile(
    r"unable to connect|connection closed|connection lost|connection refused|"
    r"connection reset|server disconnected|remote ?protocol ?error",
    re.IGNORECASE,
)
_TIMEOUT_TEXT = re.compile(r"timed? ?out|timeout", re.IGNORECASE)
_HTTP_STATUS_TEXT = re.compile(r"HTTP error (\d{3})")


def failure_for_http_status(
    status: int, retry_after: float | None, service: str
) -> AgentqError | None:
    """The failure an HTTP status from ``service`` ("MCP server" or "model") stands for."""
    if status in (401, 403):
        code = ErrorCode.AUTH_ERROR if service == "MCP server" else ErrorCode.CONFIG_ERROR
        what = "the Infrahub token" if service == "MCP server" else "the model API key"
        return AgentqError(f"the {service} rejected {what} (HTTP {status})", code=code)
    if status == 429:
        return AgentqError(
            f"the {service} is rate limiting (HTTP 429)",
            code=ErrorCode.RATE_LIMITED,
            retry_after=retry_after,
        )
    if status >= 500 or status == 408:
        unavailable = (
            ErrorCode.MCP_UNAVAILABLE if service == "MCP server" else ErrorCode.MODEL_UNAVAILABLE
        )
        return AgentqError(
            f"the {service} answered HTTP {status}", code=unavailable, retry_after=retry_after
        )
    return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_tool_failure(error: BaseException) -> AgentqError | None:
    """A run-ending failure for a failed MCP tool call, or None if the model should see it."""
    text = _error_text(error)
    status = _HTTP_STATUS_TEXT.search(text)
    if status:
        failure = failure_for_http_status(int(status.group(1)), None, "MCP server")
        if failure is not None:
            return failure
    if AUTH_REJECTION_TEXT.search(text):
        return AgentqError(
            "Infrahub rejected the token; the MCP server said: " + first_line(text),
            code=ErrorCode.AUTH_ERROR,
        )
    if _RATE_TEXT.search(text):
        return AgentqError(
            "the MCP server is rate limiting: " + first_line(text), code=ErrorCode.RATE_LIMITED
        )
    if _UNREACHABLE_TEXT.search(text):
        return AgentqError(
            "the MCP server or Infrahub is unreachable: " + first_line(text),
            code=ErrorCode.MCP_UNAVAILABLE,
        )
    if isinstance(error, TimeoutError | asyncio.TimeoutError) or _TIMEOUT_TEXT.search(text):
        return AgentqError(
            "an MCP tool call timed out (AGENTQ_TOOL_TIMEOUT_SECONDS)", code=ErrorCode.TIMEOUT
        )
    return None


def tool_error_message(error: BaseException) -> str:
    """What the model is told of a failed tool call it can act on: the error's first line,
    scrubbed (the server may echo the token)."""
    return first_line(_error_text(error))


CURRENT_JOB: ContextVar[JobContext | None] = ContextVar("agentq_current_job", default=None)


def classify(error: BaseException, job: JobContext | None = None) -> AgentqError:
    """The taxonomy's view of whatever an attempt raised."""
    if job is not None and job.failure is not None:
        return job.failure
    found = _find(error, AgentqError) or _classify_foreign(error)
    vague = found.code in (ErrorCode.INTERNAL, ErrorCode.MCP_UNAVAILABLE)
    if vague and job is not None and job.last_http_failure is not None:
        # The SDK lost the HTTP status on the way; the response hook saw it.
        return job.last_http_failure
    return found


def _classify_foreign(error: BaseException) -> AgentqError:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            return _classify_foreign(inner)
    if isinstance(error, MaxTurnsExceeded):
        return AgentqError(
            "the agent did not finish within AGENTQ_MAX_TURNS turns", code=ErrorCode.MAX_TURNS
        )
    if isinstance(error, openai.RateLimitError):
        return AgentqError(
            "the model endpoint is rate limiting (HTTP 429)",
            code=ErrorCode.RATE_LIMITED,
            retry_after=parse_retry_after(error.response.headers.get("retry-after")),
        )
    if isinstance(error, openai.APITimeoutError):
        return AgentqError("the model endpoint timed out", code=ErrorCode.TIMEOUT)
    if isinstance(error, openai.APIConnectionError):
        return AgentqError("the model endpoint is unreachable", code=ErrorCode.MODEL_UNAVAILABLE)
    if isinstance(error, openai.APIStatusError):
        failure = failure_for_http_status(
            error.status_code,
            parse_retry_after(error.response.headers.get("retry-after")),
            "model endpoint",
        )
        if failure is not None:
            return failure
        return AgentqError(
            f"the model endpoint refused the request (HTTP {error.status_code}): "
            + first_line(str(error.message)),
            code=ErrorCode.CONFIG_ERROR,
        )
    if isinstance(error, ModelBehaviorError):
        return AgentqError(
            "the model misbehaved: " + first_line(str(error)), code=ErrorCode.MODEL_ERROR
        )
    if isinstance(error, UserError):
        text = str(error)
        if "connect" in text.lower():
            return AgentqError(
                "cannot connect to the MCP server: " + first_line(text),
                code=ErrorCode.MCP_UNAVAILABLE,
            )
        tool_failure = classify_tool_failure(error)
        if tool_failure is not None:
            return tool_failure
        return AgentqError(first_line(text), code=ErrorCode.INTERNAL)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return AgentqError("the job took too long", code=ErrorCode.TIMEOUT)
    tool_failure = classify_tool_failure(error)
    if tool_failure is not None:
        return tool_failure
    return AgentqError(
        f"unexpected {type(error).__name__}: {first_line(str(error))}",
        code=ErrorCode.INTERNAL,
    )


def _find(error: BaseException, kind: type[AgentqError]) -> AgentqError | None:
    """The first ``kind`` in ``error``'s causes, contexts and group members."""
    return next((e for e in linked(error, contexts=True) if isinstance(e, kind)), None)


def _error_text(error: BaseException) -> str:
    return " | ".join(str(e) or type(e).__name__ for e in islice(linked(error), 8))


def first_line(text: str) -> str:
    """The first line of an error text, for a message: scrubbed *before* it is cut, so a token
    echoed by the server can neither survive whole nor leave a prefix behind."""
    return scrubbed_excerpt(text.strip().split("\n", 1)[0], 500)
