"""The Redis Lua scripts as files (``agentq.lua``): each says what it takes, each ships in the
package, each compiles, and each still runs after Redis has forgotten it (``SCRIPT FLUSH``, as
after a restart or a failover): redis-py's EVALSHA falls back to loading the script again."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.client import Pipeline

from agentq import lua
from agentq.connections import connect
from agentq.dispatch import Dispatcher
from agentq.jobs import Job, JobStatus
from agentq.ratelimit import RateLimiter, Semaphore
from agentq.store import JobStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_FILES = sorted(
    entry.name for entry in resources.files("agentq.lua").iterdir() if entry.name.endswith(".lua")
)
INCLUDE = re.compile(r"^--#include (\w+)\.lua$", re.MULTILINE)
INCLUDED = {
    name
    for file in SCRIPT_FILES
    for name in INCLUDE.findall(resources.files("agentq.lua").joinpath(file).read_text())
}


def header(name: str) -> str:
    """The comment block a script file starts with."""
    text = resources.files("agentq.lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        if not line.startswith("--") or INCLUDE.match(line):
            break
        lines.append(line)
    return "\n".join(lines)


def test_there_are_scripts_and_no_lua_left_in_python() -> None:
    assert len(SCRIPT_FILES) >= 10
    for path in (ROOT / "agentq").rglob("*.py"):
        assert "redis.call(" not in path.read_text(encoding="utf-8"), f"Lua left in {path}"


@pytest.mark.parametrize("file", SCRIPT_FILES)
def test_each_script_says_what_it_takes_and_why_it_is_atomic(file: str) -> None:
    name = file.removesuffix(".lua")
    text = header(name)
    assert "Why atomic:" in text, f"{file}: its header must say why it must be atomic"
    assert "agentq." in text, f"{file}: its header must name the code that runs it"
    if name not in INCLUDED:  # a script of its own, not a function the others include
        for part in ("KEYS[1]", "ARGV[1]", "Returns"):
            assert part in text, f"{file}: its header must say {part}"


def test_every_script_file_is_package_data() -> None:
    """``pip install .`` (the Docker image) ships only the data pyproject.toml lists."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["agentq.lua"]
    for file in SCRIPT_FILES:
        assert any(fnmatch.fnmatch(file, p) for p in patterns), f"{file} is not package data"


def test_includes_are_resolved() -> None:
    assert "store_job_moved" in INCLUDED
    for file in SCRIPT_FILES:
        assert not INCLUDE.search(lua.source(file.removesuffix(".lua")))
    assert "local function job_moved" in lua.source("store_claim")


def test_a_script_is_read_once_per_process(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    JobStore(redis_client, 60)  # reads the store's scripts, if nothing has yet

    def no_reading(*_args: object) -> None:
        raise AssertionError("a script file was read again")

    monkeypatch.setattr(lua.resources, "files", no_reading)
    JobStore(redis_client, 60)


@pytest.mark.parametrize("file", SCRIPT_FILES)
def test_each_script_compiles(file: str, redis_client: redis.Redis) -> None:
    """SCRIPT LOAD compiles the script: a syntax error fails here, not in a worker."""
    assert redis_client.script_load(lua.source(file.removesuffix(".lua")))


def test_scripts_run_again_after_script_flush(private_redis_url: str) -> None:
    client = connect(private_redis_url)
    store = JobStore(client, 3600, private_redis_url)
    dispatcher = Dispatcher(client, tenant_cap=10, headroom=10, ttl=3600, default_queue="q")
    owner = "f" * 32

    def create(job: Job) -> None:
        def enqueue(pipe: Pipeline) -> None:
            dispatcher.enqueue(pipe, owner, owner, [job.id])

        store.create([job], ["sealed"], enqueue)

    first, second, third = (Job.new(f"question {i}", owner=owner) for i in range(3))
    create(first)
    assert store.claim(first.id, "w1", poison_after=3) == "claimed"

    client.script_flush()
    # A call on its own: EVALSHA answers NOSCRIPT, so the script is loaded and sent again.
    assert store.finish(first.id, JobStatus.SUCCEEDED, answer="42", owner="w1")
    finished = store.load(first.id)
    assert finished is not None and finished.answer == "42"
    client.script_flush()
    # In a transaction (the dispatcher's enqueue inside create): loaded before it executes.
    create(second)
    assert dispatcher.waiting(owner) == 2  # the first was claimed without being dispatched
    client.script_flush()
    # In a plain pipeline.
    create(third)
    client.script_flush()
    assert store.cancel_many([second.id, third.id]) == 2
    for job in (first, second, third):
        loaded = store.load(job.id)
        assert loaded is not None and loaded.status.terminal


def test_async_scripts_run_again_after_script_flush(private_redis_url: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(private_redis_url)
        try:
            limiter = RateLimiter(client, "test:rate", 1000.0)
            semaphore = Semaphore(client, "test:slots", 1, 30.0)
            await limiter.wait()
            holder = await semaphore.acquire()
            await client.script_flush()
            await client.delete("test:rate")
            await limiter.wait()  # would swallow an error: the booking it leaves is the proof
            assert await client.exists("test:rate")
            await semaphore.release(holder)
            await client.script_flush()
            assert await semaphore.acquire() is not None  # not None: Redis answered
        finally:
            await client.aclose()

    asyncio.run(run())
