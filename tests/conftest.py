"""Real parts for the tests: a private redis-server, the MCP and model doubles, Celery workers.

Every service is started here on a free loopback port and stopped by PID at the end of the
session; nothing relies on a service that happens to run on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentq.sealing import generate_key
from agentq.settings import Settings
from doubles import processes
from doubles.processes import (
    Service,
    agentq_command,
    free_port,
    http_ok,
    python_module,
    spawn,
    start_redis,
)
from producer.client import Client

# Builds the real infrahub-mcp's virtualenv in the background; runs `contract` tests late.
pytest_plugins = ("tests.infrahub_mcp_server",)

# Tokens the MCP double accepts. Distinctive, so a leak is found by a plain substring search.
TOKEN_A = "ihtoken-alice-6f1d2c9e8b7a4f30"
TOKEN_B = "ihtoken-bob-0a9b8c7d6e5f4a3b"
TOKEN_BAD = "ihtoken-mallory-notaccepted-77"
ALL_TOKENS = (TOKEN_A, TOKEN_B, TOKEN_BAD)
AGENTQ_BIN = agentq_command()
CLI_OUTPUTS: list[CliResult] = []  # everything the CLI printed this session, for leak scans
ECHOED_JOB_IDS: list[str] = []  # jobs whose MCP server echoed the token: the scan must see them


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after all others (they scan what the others left behind)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_service(service_dir: Path) -> Iterator[Service]:
    service = start_redis(service_dir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def redis_url(redis_service: Service) -> str:
    return redis_service.extra["url"]


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@dataclass
class Double:
    """A running double and its admin endpoints."""

    service: Service

    @property
    def url(self) -> str:
        return self.service.base_url

    def configure(self, **knobs: Any) -> None:
        httpx.post(f"{self.url}/_double/config", json=knobs, timeout=5).raise_for_status()

    def reset(self, **knobs: Any) -> None:
        httpx.post(f"{self.url}/_double/reset", json=knobs, timeout=5).raise_for_status()

    def calls(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_double/calls", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


def start_mcp_double(
    service_dir: Path, *extra: str, name: str = "mcp-double", port: int | None = None
) -> Double:
    port = port or free_port()
    argv = python_module(
        "doubles.mcp_server",
        "--host", "127.0.0.1", "--port", str(port),
        "--token", TOKEN_A, "--token", TOKEN_B,
        *extra,
    )  # fmt: skip
    service = spawn(
        f"{name}-{port}", argv, port, service_dir, ready=http_ok(f"http://127.0.0.1:{port}/health")
    )
    return Double(service)


def start_model_double(service_dir: Path, *extra: str) -> Double:
    port = free_port()
    argv = python_module("doubles.model_server", "--host", "127.0.0.1", "--port", str(port), *extra)
    service = spawn(
        f"model-double-{port}",
        argv,
        port,
        service_dir,
        ready=http_ok(f"http://127.0.0.1:{port}/health"),
    )
    return Double(service)


@pytest.fixture(scope="session")
def mcp_double(service_dir: Path) -> Iterator[Double]:
    double = start_mcp_double(service_dir)
    yield double
    double.service.stop()


@pytest.fixture(scope="session")
def model_double(service_dir: Path) -> Iterator[Double]:
    double = start_model_double(service_dir)
    yield double
    double.service.stop()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return generate_key()


@dataclass
class Stack:
    """Settings (as env vars) pointing at the test's Redis and doubles."""

    env: dict[str, str]
    redis_url: str
    logs: list[Path] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values = {
            key.removeprefix("AGENTQ_").lower(): value
            for key, value in self.env.items()
            if key.startswith("AGENTQ_")
        }
        values.update(overrides)
        return Settings(**values)

    def client(self) -> Client:
        return Client(self.settings())


def own_stack(stack: Stack, db: int, queue: str, **env: str) -> Stack:
    """The stack in Redis database ``db`` with its own queue: a test that starts a worker with
    its own settings there is not disturbed by the session's worker, nor counted by it."""
    url = stack.redis_url.rsplit("/", 1)[0] + f"/{db}"
    return Stack(
        env={**stack.env, "AGENTQ_REDIS_URL": url, "AGENTQ_QUEUE": queue, **env},
        redis_url=url,
        logs=stack.logs,
    )


def base_env(redis_url: str, secret_key: str, mcp: Double, model: Double) -> dict[str, str]:
    return {
        "AGENTQ_REDIS_URL": redis_url,
        "AGENTQ_SECRET_KEY": secret_key,
        "AGENTQ_MCP_URL": f"{mcp.url}/mcp",
        "AGENTQ_MODEL": "demo-model",
        "AGENTQ_MODEL_API": "chat_completions",
        "AGENTQ_LOG_FORMAT": "json",
        "AGENTQ_LOG_LEVEL": "INFO",
        "AGENTQ_WORKER_CONCURRENCY": "8",
        # The suite submits far more than a user would in a minute with one token.
        "AGENTQ_TENANT_SUBMITS_PER_MINUTE": "0",
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
    }


@pytest.fixture(scope="session")
def stack(redis_url: str, secret_key: str, mcp_double: Double, model_double: Double) -> Stack:
    return Stack(env=base_env(redis_url, secret_key, mcp_double, model_double), redis_url=redis_url)


def start_worker(stack: Stack, service_dir: Path, worker_processes: int = 1, **env: str) -> Service:
    service = processes.start_worker(
        {**stack.env, **env}, service_dir, stack.redis_url, processes=worker_processes
    )
    stack.logs.append(service.log_path)
    return service


@pytest.fixture(scope="session")
def worker(stack: Stack, service_dir: Path) -> Iterator[Service]:
    service = start_worker(stack, service_dir)
    yield service
    service.stop()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


CliRunner = Callable[..., CliResult]


def run_cli(
    env: dict[str, str], *args: str, token: str | None = None, timeout: float = 60
) -> CliResult:
    """Run the real ``agentq`` console script with ``env`` (and the token in its env var)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTQ_", "OPENAI_"))}
    full_env.pop("INFRAHUB_API_TOKEN", None)
    full_env.update(env)
    if token is not None:
        full_env["INFRAHUB_API_TOKEN"] = token
    completed = subprocess.run(
        [AGENTQ_BIN, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    result = CliResult(completed.returncode, completed.stdout, completed.stderr)
    CLI_OUTPUTS.append(result)
    return result


@pytest.fixture
def cli(stack: Stack) -> CliRunner:
    def run(*args: str, token: str | None = None, **env: str) -> CliResult:
        return run_cli({**stack.env, **env}, *args, token=token)

    return run
