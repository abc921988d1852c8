"""No model request for a token Infrahub has not accepted; quotas per tenant at submit.

The MCP double runs in pass-through mode, like infrahub-mcp in the compose deployment: the
handshake, tools/list and prompts/get need no token, only reads that reach Infrahub check it
(the shared ``proving`` stack of ``tests/conftest.py``). The model double answers without calling
a tool (``echo``), which is how a made-up token used to get a "succeeded" job on the
deployment's model key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentq.batches
from agentq.batches import owner_batches_key
from agentq.errors import AgentqError, ErrorCode
from agentq.quotas import QuotaExceeded
from doubles.processes import wait_until
from producer.client import Client
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    TOKEN_BAD,
    CliRunner,
    Double,
    Stack,
    own_stack,
    start_api,
)


@pytest.fixture
def echo_model(model_double: Double) -> Iterator[Double]:
    """The session's model double (``proving``'s), answering without calling a tool."""
    model_double.reset(policy="echo")
    yield model_double
    model_double.reset()  # the session's other tests expect the default policy


def wait_ended(client: Client, job_id: str, token: str) -> Any:
    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen["job"] = client.get(job_id, token)
        return seen["job"].status in ("succeeded", "failed", "cancelled")

    wait_until(ended, 60, interval=0.1, what=f"job {job_id}")
    return seen["job"]


def tool_calls(double: Double) -> list[dict[str, Any]]:
    return [c for c in double.calls() if c.get("method") == "tools/call"]


def test_a_token_infrahub_rejects_gets_no_model_request(
    proving: Stack, passthrough_mcp: Double, echo_model: Double
) -> None:
    client = proving.client()  # echo_model has no calls recorded yet
    job_id = client.submit("Which sites are there?", TOKEN_BAD)
    job = wait_ended(client, job_id, TOKEN_BAD)
    assert job.status == "failed"
    assert job.error is not None and job.error.code == "auth_error"
    assert job.attempts == 1
    assert echo_model.calls() == []  # the deployment's model key was never used
    trace = client.trace(job_id, TOKEN_BAD)
    first = trace.attempts[0].steps[0]
    assert first.kind == "token_check" and first.is_error
    assert not any(step.kind == "prompt" for step in trace.attempts[0].steps)


def test_an_accepted_token_is_proven_once_per_process(
    proving: Stack, passthrough_mcp: Double, echo_model: Double
) -> None:
    client = proving.client()
    passthrough_mcp.reset()
    first = client.submit("Which sites are there?", TOKEN_B)
    assert wait_ended(client, first, TOKEN_B).status == "succeeded"
    second = client.submit("Which racks are there?", TOKEN_B)
    assert wait_ended(client, second, TOKEN_B).status == "succeeded"
    proofs = [c for c in tool_calls(passthrough_mcp) if c.get("tool") == "query_graphql"]
    assert len(proofs) == 1, proofs
    steps = [client.trace(job, TOKEN_B).attempts[0].steps[0] for job in (first, second)]
    assert [step.kind for step in steps] == ["token_check", "token_check"]
    assert steps[0].result_excerpt is None and steps[1].result_excerpt == "(cached)"


def test_submit_time_check_refuses_a_bad_token_and_enqueues_nothing(
    proving: Stack, cli: CliRunner, redis_client: Any
) -> None:
    checking = own_stack(proving, 21, "proof-submit", AGENTQ_VERIFY_TOKEN_AT_SUBMIT="true")
    client = checking.client()
    with pytest.raises(AgentqError) as refused:
        client.submit("Which sites are there?", TOKEN_BAD)
    assert refused.value.code == ErrorCode.AUTH_ERROR
    assert TOKEN_BAD not in str(refused.value)
    assert client.redis.dbsize() == 0  # nothing written at all
    result = cli("submit", "Which sites are there?", token=TOKEN_BAD, **checking.env)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "rejected the token" in result.stderr
    assert client.redis.dbsize() == 0
    assert client.submit("Which sites are there?", TOKEN_A)  # an accepted token goes through


def test_quotas_refuse_with_retry_after_and_free_up_as_work_ends(
    stack: Stack, cli: CliRunner
) -> None:
    quota = own_stack(
        stack,
        22,
        "quota",
        AGENTQ_TENANT_SUBMITS_PER_MINUTE="4",
        AGENTQ_TENANT_MAX_QUEUED_JOBS="5",
        AGENTQ_TENANT_MAX_QUEUED_BATCHES="1",
    )
    client = quota.client()  # no worker serves this queue: everything stays queued
    # The submits-per-minute window is the clock's minute: start well inside one.
    wait_until(lambda: time.time() % 60 < 45, 20, interval=0.2, what="a fresh minute")
    batch = client.submit_batch(["q1", "q2", "q3"], TOKEN_A)  # submit 1, 3 open jobs
    with pytest.raises(QuotaExceeded, match="AGENTQ_TENANT_MAX_QUEUED_BATCHES"):
        client.submit_batch(["q4"], TOKEN_A)  # refused submits are not counted
    client.submit("four", TOKEN_A)  # submit 2
    client.submit("five", TOKEN_A)  # submit 3, 5 open jobs
    with pytest.raises(QuotaExceeded, match="AGENTQ_TENANT_MAX_QUEUED_JOBS"):
        client.submit("six", TOKEN_A)
    assert client.cancel_batch(batch, TOKEN_A) == 3  # its jobs end: room again
    client.submit("now there is room", TOKEN_A)  # submit 4
    with pytest.raises(QuotaExceeded, match="AGENTQ_TENANT_SUBMITS_PER_MINUTE") as refused:
        client.submit("one more", TOKEN_A)
    assert refused.value.retry_after is not None and 1 <= refused.value.retry_after <= 60
    result = cli("submit", "and another", token=TOKEN_A, **quota.env)
    assert result.code == 5, result.stderr
    assert result.stderr.startswith("error: too many submits")
    assert result.stderr.count("\n") == 1
    assert client.submit("another tenant has its own quotas", TOKEN_B)


def test_owner_indexes_stay_bounded(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentq.batches, "OWNER_INDEX_SIZE", 3)
    client = own_stack(stack, 22, "quota").client()
    client.redis.flushdb()
    ids = [client.submit_batch([f"q{n}"], TOKEN_B) for n in range(5)]
    assert [b.id for b in client.list_batches(TOKEN_B)] == ids[::-1][:3]  # the newest 3 kept
    assert client.redis.zcard(owner_batches_key(client.sealer.fingerprint(TOKEN_B))) == 3


def test_the_api_answers_401_for_a_refused_token_and_429_with_retry_after(
    proving: Stack, service_dir: Path
) -> None:
    checked = own_stack(
        proving,
        21,
        "proof-api",
        AGENTQ_VERIFY_TOKEN_AT_SUBMIT="true",
        AGENTQ_TENANT_SUBMITS_PER_MINUTE="1",
    )
    checked.client().redis.flushdb()
    api = start_api(checked.env, service_dir)
    try:

        def submit(token: str) -> httpx.Response:
            return httpx.post(
                f"{api.base_url}/v1/jobs",
                json={"question": "Which sites are there?"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )

        refused = submit(TOKEN_BAD)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "auth_error"
        assert TOKEN_BAD not in refused.text
        wait_until(lambda: time.time() % 60 < 50, 15, interval=0.2, what="a fresh minute")
        assert submit(TOKEN_A).status_code == 202
        limited = submit(TOKEN_A)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "quota_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
    finally:
        api.stop()
