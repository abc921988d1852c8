"""Token sealing and owner fingerprints."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet

from agentq.errors import AgentqError, ConfigError, ErrorCode
from agentq.sealing import TokenSealer, generate_key

TOKEN = "ihtoken-sealing-test-123456"


def test_seal_round_trip_and_ciphertext_hides_token() -> None:
    sealer = TokenSealer(generate_key())
    sealed = sealer.seal(TOKEN)
    assert TOKEN not in sealed
    assert sealer.unseal(sealed) == TOKEN
    assert sealer.seal(TOKEN) != sealed  # fresh IV every time


def test_another_key_cannot_unseal() -> None:
    sealed = TokenSealer(generate_key()).seal(TOKEN)
    with pytest.raises(ConfigError, match="cannot be opened"):
        TokenSealer(generate_key()).unseal(sealed)


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
    sealed_before = before.seal(TOKEN)
    fp_before = before.fingerprint(TOKEN)
    rotated = TokenSealer(f"{new},{old}")
    assert rotated.unseal(sealed_before) == TOKEN
    assert rotated.owns(fp_before, TOKEN)
    assert TokenSealer(new).unseal(rotated.seal(TOKEN)) == TOKEN


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_key_is_a_config_error(value: str | None) -> None:
    with pytest.raises(ConfigError, match="AGENTQ_SECRET_KEY is not set"):
        TokenSealer(value)


def test_invalid_key_names_its_position_and_not_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        TokenSealer(f"{generate_key()},not-a-valid-key-value")
    assert "key #2" in str(caught.value)
    assert "not-a-valid-key-value" not in str(caught.value)


def test_a_sealed_token_expires_after_its_ttl() -> None:
    key = generate_key()
    sealer = TokenSealer(key)
    old = Fernet(key.encode()).encrypt_at_time(TOKEN.encode(), int(time.time()) - 3600).decode()
    assert sealer.unseal(old, ttl=7200) == TOKEN
    with pytest.raises(AgentqError, match="expired") as caught:
        sealer.unseal(old, ttl=600)
    assert caught.value.code == ErrorCode.AUTH_ERROR
    assert TOKEN not in str(caught.value)


def test_reseal_moves_to_the_newest_key_and_keeps_the_seal_time() -> None:
    old, new = generate_key(), generate_key()
    sealed = Fernet(old.encode()).encrypt_at_time(TOKEN.encode(), int(time.time()) - 3600).decode()
    rotated = TokenSealer(f"{new},{old}").reseal(sealed)
    only_new = TokenSealer(new)
    assert only_new.unseal(rotated) == TOKEN
    assert abs(only_new.sealed_at(rotated) - (time.time() - 3600)) < 5
    with pytest.raises(ConfigError):
        TokenSealer(generate_key()).reseal(sealed)
