"""Token sealing, owner fingerprints, and the lifetime of a job's sealed token in the store."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet

from agentq.errors import AgentqError, ConfigError, ErrorCode
from agentq.jobs import Job, JobError, JobStatus
from agentq.sealing import SealBinding, TokenSealer, generate_key
from producer.client import Client
from tests.conftest import TOKEN_A, Stack, own_stack

TOKEN = "ihtoken-sealing-test-123456"


def binding_for(sealer: TokenSealer, token: str = TOKEN, **changes: object) -> SealBinding:
    job = Job.new("Which devices are in atl1?", owner=sealer.fingerprint(token))
    return dataclasses.replace(SealBinding.of(job), **changes)  # type: ignore[arg-type]


def test_seal_round_trip_and_ciphertext_hides_token() -> None:
    sealer = TokenSealer(generate_key())
    binding = binding_for(sealer)
    sealed = sealer.seal(TOKEN, binding)
    assert TOKEN not in sealed
    assert sealer.unseal(sealed, binding) == TOKEN
    assert sealer.seal(TOKEN, binding) != sealed  # fresh IV every time


def test_another_key_cannot_unseal() -> None:
    sealer = TokenSealer(generate_key())
    binding = binding_for(sealer)
    sealed = sealer.seal(TOKEN, binding)
    with pytest.raises(ConfigError, match="cannot be opened"):
        TokenSealer(generate_key()).unseal(sealed, binding)


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": "another-job-id"},
        {"owner": "0" * 32},
        {"question_sha256": "0" * 64},
        {"allow_writes": True},
    ],
    ids=["job", "owner", "question", "allow_writes"],
)
def test_a_sealed_token_opens_only_for_the_job_it_was_sealed_for(change: dict[str, object]) -> None:
    sealer = TokenSealer(generate_key())
    binding = binding_for(sealer)
    sealed = sealer.seal(TOKEN, binding)
    with pytest.raises(AgentqError, match="does not belong to this job") as caught:
        sealer.unseal(sealed, dataclasses.replace(binding, **change))  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.AUTH_ERROR
    assert not caught.value.transient
    assert TOKEN not in str(caught.value)


def test_a_sealed_token_must_match_the_jobs_owner_fingerprint() -> None:
    """Bound fields alone are not trusted: the token inside must be the owner's too."""
    sealer = TokenSealer(generate_key())
    binding = binding_for(sealer, token="someone-elses-token")
    with pytest.raises(AgentqError, match="does not belong to this job"):
        sealer.unseal(sealer.seal(TOKEN, binding), binding)


def test_an_unbound_v1_sealed_token_is_refused() -> None:
    key = generate_key()
    sealer = TokenSealer(key)
    v1 = Fernet(key.encode()).encrypt(TOKEN.encode()).decode()  # what agentq sealed before
    with pytest.raises(AgentqError, match="old format") as caught:
        sealer.unseal(v1, binding_for(sealer))
    assert caught.value.code == ErrorCode.AUTH_ERROR
    assert TOKEN not in str(caught.value)


def test_fingerprint_is_keyed_stable_and_per_token() -> None:
    key = generate_key()
    sealer = TokenSealer(key)
    fp = sealer.fingerprint(TOKEN)
    assert fp == TokenSealer(key).fingerprint(TOKEN)
    assert fp != sealer.fingerprint(TOKEN + "x")
    assert fp != TokenSealer(generate_key()).fingerprint(TOKEN)
    assert TOKEN not in fp
    assert sealer.owns(fp, TOKEN)
    assert not sealer.owns(fp, "someone-else")


def test_rotation_newest_seals_all_unseal_and_old_owners_still_match() -> None:
    old, new = generate_key(), generate_key()
    before = TokenSealer(old)
    binding = binding_for(before)
    sealed_before = before.seal(TOKEN, binding)
    fp_before = before.fingerprint(TOKEN)
    rotated = TokenSealer(f"{new},{old}")
    assert rotated.unseal(sealed_before, binding) == TOKEN
    assert rotated.owns(fp_before, TOKEN)
    assert rotated.fingerprints(TOKEN) == [TokenSealer(new).fingerprint(TOKEN), fp_before]
    moved = binding.with_owner(rotated.fingerprint(TOKEN))
    assert TokenSealer(new).unseal(rotated.seal(TOKEN, moved), moved) == TOKEN


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_key_is_a_config_error(value: str | None) -> None:
    with pytest.raises(ConfigError, match="AGENTQ_SECRET_KEY is not set"):
        TokenSealer(value)


def test_invalid_key_names_its_position_and_not_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        TokenSealer(f"{generate_key()},not-a-valid-key-value")
    assert "key #2" in str(caught.value)
    assert "not-a-valid-key-value" not in str(caught.value)


def sealed_at(key: str, token: str, binding: SealBinding, when: float) -> str:
    payload = json.dumps(
        {
            "v": 2,
            "t": token,
            "job": binding.job_id,
            "owner": binding.owner,
            "q": binding.question_sha256,
            "w": binding.allow_writes,
        }
    )
    return Fernet(key.encode()).encrypt_at_time(payload.encode(), int(when)).decode()


def test_a_sealed_token_expires_after_its_ttl() -> None:
    key = generate_key()
    sealer = TokenSealer(key)
    binding = binding_for(sealer)
    old = sealed_at(key, TOKEN, binding, time.time() - 3600)
    assert sealer.unseal(old, binding, ttl=7200) == TOKEN
    with pytest.raises(AgentqError, match="expired") as caught:
        sealer.unseal(old, binding, ttl=600)
    assert caught.value.code == ErrorCode.AUTH_ERROR
    assert TOKEN not in str(caught.value)


def test_rebind_moves_to_the_newest_key_and_keeps_the_seal_time() -> None:
    old, new = generate_key(), generate_key()
    binding = binding_for(TokenSealer(old))
    sealed = sealed_at(old, TOKEN, binding, time.time() - 3600)
    rotated = TokenSealer(f"{new},{old}")
    token, bound = rotated.open(sealed)
    assert (token, bound) == (TOKEN, binding)
    moved = binding.with_owner(rotated.fingerprint(TOKEN))
    resealed = rotated.rebind(sealed, token, moved)
    only_new = TokenSealer(new)
    assert only_new.unseal(resealed, moved) == TOKEN
    assert abs(only_new.sealed_at(resealed) - (time.time() - 3600)) < 5
    with pytest.raises(AgentqError, match="does not belong to this job"):
        only_new.unseal(resealed, binding)  # bound to the new owner fingerprint now
    with pytest.raises(ConfigError):
        TokenSealer(generate_key()).open(sealed)


# A job's sealed token is deleted however the job ends ----------------------------------------


@pytest.fixture(scope="module")
def idle_client(stack: Stack) -> Client:
    """A client in a database no worker serves: its jobs stay queued until a test moves them."""
    return own_stack(stack, 31, "sealed-lifetime-tests").client()


def poison_by_claims(client: Client, job_id: str) -> None:
    for n in range(3):  # each claimant dies (it never heartbeats): the next takes over
        assert client.store.claim(job_id, f"dead-{n}", poison_after=3) == "claimed"
    assert client.store.claim(job_id, "w", poison_after=3) == "poisoned"


def poison_by_reaper(client: Client, job_id: str) -> None:
    assert client.store.claim(job_id, "dead", poison_after=1) == "claimed"
    assert client.store.requeue(job_id, 0.0, owner="dead", lost=True, poison_after=1) == "poisoned"


def cancel_queued(client: Client, job_id: str) -> None:
    assert client.cancel(job_id, TOKEN_A).cancelled


def cancel_running(client: Client, job_id: str) -> None:
    client.store.claim(job_id, "w", poison_after=3)
    assert client.cancel(job_id, TOKEN_A).previous == JobStatus.RUNNING


def succeed(client: Client, job_id: str) -> None:
    client.store.claim(job_id, "w", poison_after=3)
    assert client.store.finish(job_id, JobStatus.SUCCEEDED, answer="42", owner="w")


def fail_at_deadline(client: Client, job_id: str) -> None:
    client.store.claim(job_id, "w", poison_after=3)
    error = JobError(code=ErrorCode.TIMEOUT, message="ran past its deadline")
    assert client.store.finish(job_id, JobStatus.FAILED, error=error, owner="w")


@pytest.mark.parametrize(
    "end",
    [poison_by_claims, poison_by_reaper, cancel_queued, cancel_running, succeed, fail_at_deadline],
)
def test_a_job_that_ends_keeps_no_sealed_token(
    idle_client: Client, end: Callable[[Client, str], None]
) -> None:
    job_id = idle_client.submit("Which sites are there?", TOKEN_A)
    assert idle_client.store.sealed_token(job_id) is not None
    end(idle_client, job_id)
    job = idle_client.store.load(job_id)
    assert job is not None and job.status.terminal
    assert idle_client.store.sealed_token(job_id) is None


def test_a_cancelled_batch_keeps_no_sealed_tokens(idle_client: Client) -> None:
    batch_id = idle_client.submit_batch(["Which sites?", "Which devices?", "Which tags?"], TOKEN_A)
    ids = [i for chunk in idle_client.batches.job_ids(batch_id) for i in chunk]
    assert all(idle_client.store.sealed_token(i) is not None for i in ids)
    assert idle_client.cancel_batch(batch_id, TOKEN_A) == 3
    assert all(idle_client.store.sealed_token(i) is None for i in ids)
