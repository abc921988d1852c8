"""Proving a job's token on the job's own MCP session, before its first model call.

See ``agentq.token_proof`` for why and what is read. The read goes through the job's session, so
it carries the job's token, counts against the shared MCP rate limit and its failures are
classified like any other tool call's: a token Infrahub refuses ends the job ``auth_error`` after
one attempt; an unreachable server or Infrahub is transient, as usual. The proof is one step of
the attempt's trace.
"""

from __future__ import annotations

import asyncio
import time

from mcp.client.session import ClientSession

from agentq.errors import AgentqError, ErrorCode
from agentq.token_proof import PROOF_ARGUMENTS, PROOF_TOOL, ProofCache
from agentq.traces import Step
from worker.failures import JobContext, classify, classify_tool_failure, first_line
from worker.tool_bridge import SERVER_NAME, call_tool, model_output
from worker.tracing import tool_output_text


async def prove_token(
    session: ClientSession, token: str, proofs: ProofCache, job: JobContext
) -> None:
    """Prove ``token`` on the job's own ``session`` (unless this process did lately); raise the
    job's failure if refused.

    The check is the attempt's first trace step, failed or not.
    """
    step = Step(kind="token_check", name=PROOF_TOOL, server=SERVER_NAME, started_at=time.time())
    job.steps.append(step)
    if proofs.proven(token):
        step.result_excerpt = "(cached)"
        return
    # One job per token proves it while that token's other jobs wait (a cold process with 50
    # jobs of one user in flight sends one proof, not 50).
    key = proofs.key(token)
    lock = _proving.setdefault(key, asyncio.Lock())
    try:
        async with lock:
            if proofs.proven(token):
                step.result_excerpt = "(cached)"
                return
            await _prove(session, job)
            proofs.remember(token)
    except AgentqError as failure:
        step.is_error = True
        step.error = failure.message
        raise
    finally:
        step.duration_ms = (time.time() - (step.started_at or 0.0)) * 1000
        if not lock.locked():
            _proving.pop(key, None)


# Proofs under way on this process's event loop, by ProofCache key.
_proving: dict[str, asyncio.Lock] = {}


async def _prove(session: ClientSession, job: JobContext) -> None:
    try:
        result = await call_tool(session, PROOF_TOOL, dict(PROOF_ARGUMENTS))
    except Exception as exc:
        raise classify(exc, job) from None
    if job.failure is not None:  # e.g. the response hook saw an HTTP 401
        raise job.failure
    if result.is_error:
        text = tool_output_text(model_output(result))
        raise classify_tool_failure(Exception(text)) or AgentqError(
            "the token check (an AccountProfile read through the MCP server) failed: "
            + first_line(text),
            code=ErrorCode.CONFIG_ERROR,
        )
