"""Durable acknowledgements (agentq.durability) against real redis-server processes: which way a
server makes a write durable, refusing writes that cannot be (``on``), and a submit acknowledged
just before Redis is killed being there after it restarts."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agentq.errors import ServiceUnavailable
from doubles.processes import Service, start_redis
from producer.client import Client
from tests.conftest import TOKEN_A, Stack


def client_on(stack: Stack, redis: Service, mode: str) -> Client:
    url = redis.extra["url"]
    return Stack(
        env={**stack.env, "AGENTQ_REDIS_URL": url, "AGENTQ_DURABLE_WRITES": mode},
        redis_url=url,
    ).client()


@pytest.mark.parametrize(
    ("appendonly", "fsync", "mode", "plan"),
    [
        (True, "everysec", "auto", "none"),
        (True, "always", "auto", "always"),
        (False, "always", "auto", "none"),
        (True, "everysec", "off", "off"),
    ],
)
def test_the_plan_follows_what_redis_7_0_runs(
    stack: Stack, tmp_path: Path, appendonly: bool, fsync: str, mode: str, plan: str
) -> None:
    redis = start_redis(tmp_path, appendonly=appendonly, extra=("--appendfsync", fsync))
    try:
        client = client_on(stack, redis, mode)
        assert client.store.durable_plan() == plan
        job_id = client.submit("Which sites are there?", TOKEN_A)  # auto and off never refuse
        assert client.get(job_id, TOKEN_A).question == "Which sites are there?"
    finally:
        redis.stop()


def test_on_refuses_a_write_that_cannot_be_durable_and_writes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path, appendonly=True, extra=("--appendfsync", "everysec"))
    try:
        client = client_on(stack, redis, "on")
        with pytest.raises(ServiceUnavailable, match="appendfsync always") as caught:
            client.submit("Which sites are there?", TOKEN_A)
        assert "\n" not in str(caught.value)
        with pytest.raises(ServiceUnavailable):
            client.submit_batch(["a?", "b?"], TOKEN_A)
        assert not client.redis.keys("agentq:job:*")
        assert not client.redis.keys("agentq:batch:*")
        redis_always = start_redis(tmp_path / "always", appendonly=True)
        try:
            redis_always_client = client_on(stack, redis_always, "on")
            redis_always_client.redis.config_set("appendfsync", "always")
            assert redis_always_client.submit("Which sites are there?", TOKEN_A)
        finally:
            redis_always.stop()
    finally:
        redis.stop()


@pytest.mark.waitaof
def test_a_submit_acknowledged_just_before_a_crash_is_there_after_it(
    stack: Stack, tmp_path: Path, waitaof_redis_binary: Path
) -> None:
    data = tmp_path / "aof"
    redis = start_redis(
        tmp_path, appendonly=True, data_dir=data, binary=waitaof_redis_binary,
        extra=("--appendfsync", "everysec"),
    )  # fmt: skip
    port = redis.port
    try:
        client = client_on(stack, redis, "on")
        assert client.store.durable_plan() == "waitaof"
        for round_ in range(3):
            job_id = client.submit(f"Which sites are there? ({round_})", TOKEN_A)
            redis.stop(signal.SIGKILL)  # the instant after the answer
            redis = start_redis(
                tmp_path, appendonly=True, data_dir=data, port=port,
                binary=waitaof_redis_binary, extra=("--appendfsync", "everysec"),
            )  # fmt: skip
            assert client.get(job_id, TOKEN_A).question.endswith(f"({round_})")
    finally:
        redis.stop()
