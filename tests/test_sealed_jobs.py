"""A job's sealed token with real workers: bound to its job, and kept through a key rotation.

Each test runs in its own Redis database and queue with no worker until it starts one, so its
jobs wait exactly as long as the test needs them to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentq.errors import ErrorCode, JobNotFound
from agentq.jobs import JobStatus
from agentq.sealing import generate_key
from agentq.store import JobStore
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    Double,
    FreshWorker,
    Stack,
    own_stack,
    run_cli,
    start_mcp_double,
    start_model_double,
)


@pytest.fixture
def own_doubles(service_dir: Path) -> Iterator[tuple[Double, Double]]:
    """An MCP and a model double of the test's own: whatever they record, its worker sent."""
    mcp = start_mcp_double(service_dir, name="mcp-binding")
    model = start_model_double(service_dir)
    yield mcp, model
    mcp.service.stop()
    model.service.stop()


def test_a_sealed_token_copied_onto_another_job_does_not_run_it(
    stack: Stack, own_doubles: tuple[Double, Double], fresh_worker: FreshWorker
) -> None:
    """Redis write access without the key: Bob copies Alice's waiting sealed token onto his own
    job, hoping it runs his question with her permissions."""
    mcp, model = own_doubles
    isolated = own_stack(
        stack,
        29,
        "seal-binding-tests",
        AGENTQ_MCP_URL=f"{mcp.url}/mcp",
        OPENAI_BASE_URL=f"{model.url}/v1",
    )
    client = isolated.client()
    victim = client.submit("Which devices are in atl1?", TOKEN_A)
    attacker = client.submit("Which devices are in den1?", TOKEN_B)
    stolen = client.redis.get(JobStore.sealed_key(victim))
    assert stolen is not None
    client.redis.set(JobStore.sealed_key(attacker), stolen, keepttl=True)
    # Alice's own job never runs here, so any request with her token would be Bob's.
    assert client.cancel(victim, TOKEN_A).cancelled
    fresh_worker(isolated)  # only now: the jobs waited for it
    job = client.wait(attacker, TOKEN_B, timeout=60)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.code == ErrorCode.AUTH_ERROR
    assert "does not belong to this job" in job.error.message
    assert TOKEN_A not in job.error.message and TOKEN_B not in job.error.message
    assert job.attempts == 1
    assert [c for c in mcp.calls() if c["auth"] != "missing"] == []  # no token went out
    assert model.calls() == []
    assert client.store.sealed_token(attacker) is None


def test_key_rotation_as_documented_keeps_waiting_jobs_with_their_owner(
    stack: Stack, fresh_worker: FreshWorker
) -> None:
    """README "Keys and rotation": new key first, `agentq reseal`, drop the old key."""
    k1, k2 = generate_key(), generate_key()
    old_only = own_stack(stack, 30, "rotation-tests", AGENTQ_SECRET_KEY=k1)
    both = own_stack(stack, 30, "rotation-tests", AGENTQ_SECRET_KEY=f"{k2},{k1}")
    new_only = own_stack(stack, 30, "rotation-tests", AGENTQ_SECRET_KEY=k2)

    before = old_only.client()
    waiting = before.submit("Which sites are there?", TOKEN_A)
    to_cancel = before.submit("Which devices are in atl1?", TOKEN_A)
    ended = before.submit("Which tags are there?", TOKEN_A)
    assert before.cancel(ended, TOKEN_A).cancelled
    batch_id = before.submit_batch(["Which VLANs?", "Which prefixes?"], TOKEN_A)
    fp1 = before.sealer.fingerprint(TOKEN_A)

    # The new key first: jobs from before and after it are all listed and readable.
    during = both.client()
    newer = during.submit("Which locations are there?", TOKEN_A)
    listed = [job.id for job in during.list_jobs(TOKEN_A)]
    batch_jobs = [i for i in listed if i not in (newer, ended, to_cancel, waiting)]
    assert [i for i in listed if i not in batch_jobs] == [newer, ended, to_cancel, waiting]
    assert len(batch_jobs) == 2
    for job_id in listed:
        assert during.get(job_id, TOKEN_A).id == job_id
    assert [b.id for b in during.list_batches(TOKEN_A)] == [batch_id]
    assert during.list_jobs(TOKEN_B) == []

    resealed = run_cli(both.env, "reseal", "--json")
    assert resealed.code == 0, resealed.stderr
    counts = resealed.json()
    assert counts["resealed"] == 5  # waiting, to_cancel, newer and the batch's two
    assert counts["owners_moved"] == 4  # newer was sealed under the new key already
    assert counts["unreadable"] == 0

    # The old key dropped: every waiting job is still its owner's, to read, list and cancel.
    after = new_only.client()
    assert after.get(waiting, TOKEN_A).status == JobStatus.QUEUED
    listed = [job.id for job in after.list_jobs(TOKEN_A)]
    assert [i for i in listed if i not in batch_jobs] == [newer, to_cancel, waiting]
    assert after.batch(batch_id, TOKEN_A).total == 2
    assert [b.id for b in after.list_batches(TOKEN_A)] == [batch_id]
    assert after.cancel(to_cancel, TOKEN_A).cancelled
    with pytest.raises(JobNotFound):  # ended before the rotation: readable only with the old key
        after.get(ended, TOKEN_A)
    with pytest.raises(JobNotFound):
        after.get(waiting, TOKEN_B)

    worker = fresh_worker(new_only)  # only now: the jobs waited through the rotation
    for job_id in (waiting, newer):
        job = after.wait(job_id, TOKEN_A, timeout=60)
        assert job.status == JobStatus.SUCCEEDED, job.error
    assert after.wait_batch(batch_id, TOKEN_A, timeout=60).counts["succeeded"] == 2
    worker.stop()
    # Jobs queued under the old fingerprint gave back that tenant's dispatch slots.
    assert after.dispatcher.inflight(fp1) == 0
    assert after.dispatcher.inflight(after.sealer.fingerprint(TOKEN_A)) == 0
