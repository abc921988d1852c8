"""The small error taxonomy that every failure is mapped onto.

A job that fails records one stable, machine-readable ``code``; each code is either transient
(worth another attempt) or permanent (another attempt would fail the same way). Messages are meant
for users, so they never carry a token or a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes stored on jobs and returned by the CLI and the API."""

    AUTH_ERROR = "auth_error"
    MCP_UNAVAILABLE = "mcp_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    MAX_TURNS = "max_turns"
    BAD_REQUEST = "bad_request"
    CONFIG_ERROR = "config_error"
    NOT_FOUND = "not_found"
    MODEL_ERROR = "model_error"
    CANCELLED = "cancelled"
    POISONED = "poisoned"
    QUOTA_EXCEEDED = "quota_exceeded"  # a tenant quota refused a submit
    BUDGET_EXCEEDED = "budget_exceeded"  # its batch's or tenant's dollar budget was spent
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # a key reused with a different request
    SERVICE_UNAVAILABLE = "service_unavailable"  # agentq's own Redis is unreachable
    INTERNAL = "internal"


TRANSIENT_CODES = frozenset(
    {
        ErrorCode.MCP_UNAVAILABLE,
        ErrorCode.MODEL_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.TIMEOUT,
        ErrorCode.MODEL_ERROR,
    }
)

# Codes retried fewer times than AGENTQ_RETRY_MAX_ATTEMPTS: a model that misbehaved (called an
# unknown tool, sent bad JSON) gets one more chance, not five.
MAX_ATTEMPTS_BY_CODE = {ErrorCode.MODEL_ERROR: 2}


class AgentqError(Exception):
    """An error with a code from the taxonomy and a message safe to show a user."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.retry_after = retry_after
        self._transient = transient

    @property
    def transient(self) -> bool:
        """Worth another attempt: by code, unless this instance says otherwise."""
        if self._transient is not None:
            return self._transient
        return self.code in TRANSIENT_CODES

    def __str__(self) -> str:
        return self.message


class BadRequest(AgentqError):
    """The user sent something we refuse (empty question, missing token, ...)."""

    code = ErrorCode.BAD_REQUEST


class IdempotencyConflict(AgentqError):
    """An idempotency key already used, by the same token, for a different request."""

    code = ErrorCode.IDEMPOTENCY_CONFLICT


class ConfigError(AgentqError):
    """The deployment is misconfigured (missing or invalid secret key, bad URL, ...)."""

    code = ErrorCode.CONFIG_ERROR


class JobNotFound(AgentqError):
    """No such job for this token: deliberately the same whether it exists or not."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, job_id: str, kind: str = "job") -> None:
        super().__init__(f"{kind} {job_id!r} not found")


class ServiceUnavailable(AgentqError):
    """A service agentq depends on (Redis) could not be reached."""

    code = ErrorCode.SERVICE_UNAVAILABLE


def linked(error: BaseException, *, contexts: bool = False) -> Iterator[BaseException]:
    """``error``, then what it groups and what caused it (and, with ``contexts``, what it was
    raised while handling), each once, depth first: a failure often arrives wrapped by a library
    (an exception group from anyio, a UserError from the Agents SDK) around the one that says
    what happened."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for link in (current.__cause__, current.__context__ if contexts else None):
            if link is not None:
                stack.append(link)
