"""Real parts for the tests: a private redis-server, the MCP and model doubles, Celery workers.

Every service is started here on a free loopback port and stopped by PID at the end of the
session; nothing relies on a service that happens to run on the machine.

Workers (about 5 s each to start) come from one place, ``workers``:

- ``worker``: the session's worker, on ``stack`` (database 0, queue ``agentq``);
- ``roomy``, ``capped``, ``proving``: named stacks, each in a Redis database and queue of its own,
  whose one worker is started the first time a test asks for it and shared by every test that
  does; each is handed out idle (nothing queued, running or waiting for a retry), so a count a
  test takes before it acts is its own;
- ``workers.shared(stack)``: the same for any other configuration; ``workers.start(stack)`` for a
  module fixture's worker of its own (the fixture stops it);
- ``fresh_worker(stack)``: a worker of the test's own, stopped when the test ends, for a test
  that kills, stops or restarts it, or needs jobs to wait until it starts.

The summary at the end of a run says how many workers were started and how long they took.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentq.dispatch import LANES_KEY
from agentq.sealing import generate_key
from agentq.settings import Settings
from agentq.store import DELAYED_KEY, RUNNING_KEY, SENT_KEY
from agentq.webhooks.signing import generate_webhook_secret
from doubles import processes
from doubles.processes import (
    Service,
    agentq_command,
    free_port,
    http_ok,
    python_module,
    spawn,
    start_redis,
    wait_until,
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


def start_api(env: dict[str, str], service_dir: Path) -> Service:
    """A real ``agentq api`` process with ``env``, ready once it answers /healthz."""
    port = free_port()
    return spawn(
        f"api-{port}",
        [agentq_command(), "api", "--port", str(port)],
        port,
        service_dir,
        env=env,
        ready=http_ok(f"http://127.0.0.1:{port}/healthz"),
    )


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


class Workers:
    """Every worker process the session starts, each stopped by PID when the session ends.

    ``shared`` keeps one running worker per configuration (Redis URL, settings, processes), so
    tests that need the same one share it; ``start`` starts one more, for its caller to stop.
    """

    def __init__(self, service_dir: Path) -> None:
        self.service_dir = service_dir
        self.started: list[Service] = []
        self.startup_seconds: list[float] = []
        self._shared: dict[tuple[str, tuple[tuple[str, str], ...], int], Service] = {}

    def start(self, stack: Stack, worker_processes: int = 1) -> Service:
        """A new worker on ``stack`` (a supervisor of ``worker_processes`` if more than one)."""
        began = time.monotonic()
        service = processes.start_worker(
            stack.env, self.service_dir, stack.redis_url, processes=worker_processes
        )
        self.startup_seconds.append(time.monotonic() - began)
        self.started.append(service)
        stack.logs.append(service.log_path)  # the leak scan reads every worker's log
        return service

    def shared(self, stack: Stack, worker_processes: int = 1) -> Service:
        """The running worker for this configuration, started on first use; idle when returned
        (see ``wait_idle``). A shared worker that died is an error, not restarted silently."""
        key = (stack.redis_url, tuple(sorted(stack.env.items())), worker_processes)
        service = self._shared.get(key)
        if service is None:
            service = self._shared[key] = self.start(stack, worker_processes)
        elif not service.alive():
            tail = service.log_text()[-3000:]
            raise RuntimeError(f"a shared worker ({service.name}) died; its log ends:\n{tail}")
        wait_idle(stack)
        return service

    def stop_all(self) -> None:
        processes.stop_together(self.started)


def wait_idle(stack: Stack, timeout: float = 60) -> None:
    """Until nothing in the stack's Redis database waits to be sent, is sent and not started,
    runs, or waits for a retry: a test on a shared worker then finds it doing nothing else."""
    client = redis.Redis.from_url(stack.redis_url)

    def idle() -> bool:
        pipe = client.pipeline(transaction=False)
        pipe.llen(LANES_KEY).zcard(SENT_KEY).zcard(RUNNING_KEY).zcard(DELAYED_KEY)
        return not any(pipe.execute())

    wait_until(idle, timeout, what=f"{stack.redis_url} to be idle")


WORKERS: list[Workers] = []  # the session's, for the summary


@pytest.fixture(scope="session")
def workers(stack: Stack, service_dir: Path) -> Iterator[Workers]:
    # After ``stack``: the workers stop before the Redis and doubles they use.
    started = Workers(service_dir)
    WORKERS.append(started)
    yield started
    started.stop_all()


@pytest.fixture(scope="session")
def worker(stack: Stack, workers: Workers) -> Service:
    """The session's worker, on ``stack``."""
    return workers.shared(stack)


FreshWorker = Callable[..., Service]


@pytest.fixture
def fresh_worker(workers: Workers) -> Iterator[FreshWorker]:
    """Starts workers of the test's own (``fresh_worker(stack, worker_processes=1)``); any the
    test has not stopped are stopped when it ends, before the services of fixtures listed
    before this one (a worker should stop before its Redis or doubles do)."""
    mine: list[Service] = []

    def start(stack: Stack, worker_processes: int = 1) -> Service:
        service = workers.start(stack, worker_processes)
        mine.append(service)
        return service

    yield start
    for service in reversed(mine):
        service.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for started in WORKERS:
        seconds = started.startup_seconds
        terminalreporter.write_line(
            f"agentq workers started: {len(seconds)}, {sum(seconds):.1f} s until ready in all"
            + (f" (slowest {max(seconds):.1f} s)" if seconds else "")
        )


@pytest.fixture(scope="session")
def api(stack: Stack, service_dir: Path) -> Iterator[Service]:
    """The session's ``agentq api``, on ``stack``."""
    service = start_api(stack.env, service_dir)
    stack.logs.append(service.log_path)
    yield service
    service.stop()


# --- Named shared stacks --------------------------------------------------------------------
# Each has a Redis database and a queue no other test uses, and one worker, shared.


@pytest.fixture(scope="session")
def slow_model(service_dir: Path) -> Iterator[Double]:
    """A model double that takes 150 ms per request: jobs stay in flight long enough to count."""
    double = start_model_double(service_dir, "--latency-ms", "150")
    yield double
    double.service.stop()


@pytest.fixture(scope="session")
def roomy_stack(stack: Stack) -> Stack:
    return own_stack(
        stack,
        9,
        "roomy",
        AGENTQ_TASK_EVENTS="true",
        AGENTQ_WORKER_METRICS_PORT=str(free_port()),
        AGENTQ_WEBHOOK_SECRET=generate_webhook_secret(),
        AGENTQ_WEBHOOK_ALLOW_PRIVATE="true",  # the tests' receivers listen on loopback
        AGENTQ_WEBHOOK_ALLOW_HTTP="true",
        AGENTQ_ALLOW_WRITE_TOOLS="true",
    )


@pytest.fixture
def roomy(roomy_stack: Stack, workers: Workers) -> Stack:
    """A stack whose worker has what several tests need and no test minds: task events, a
    metrics port (``AGENTQ_WORKER_METRICS_PORT``), webhooks with a secret and allowed to
    loopback over http, write tools allowed when a job asks. Its worker is idle when handed out.
    Only ``tests/test_dashboard.py`` submits as ``TOKEN_B`` here, so its page shows its own."""
    workers.shared(roomy_stack)
    return roomy_stack


@pytest.fixture(scope="session")
def capped_stack(stack: Stack, slow_model: Double) -> Stack:
    return own_stack(
        stack,
        7,
        "capped",
        AGENTQ_WORKER_CONCURRENCY="10",
        AGENTQ_TENANT_MAX_INFLIGHT="3",
        OPENAI_BASE_URL=f"{slow_model.url}/v1",
    )


@pytest.fixture
def capped(capped_stack: Stack, workers: Workers) -> Stack:
    """A stack where a tenant has at most 3 jobs in flight, on a worker with 10 slots and the
    slow model: a cap (a tenant's, or a batch's below it) shows as a peak of running jobs."""
    workers.shared(capped_stack)
    return capped_stack


@pytest.fixture(scope="session")
def passthrough_mcp(service_dir: Path) -> Iterator[Double]:
    """An MCP double that checks tokens like the real server with token passthrough: the
    handshake, tools/list and prompts/get need none; only reads that reach Infrahub check it."""
    double = start_mcp_double(service_dir, "--auth-mode", "passthrough", name="mcp-passthrough")
    yield double
    double.service.stop()


@pytest.fixture(scope="session")
def proving_stack(stack: Stack, passthrough_mcp: Double) -> Stack:
    return own_stack(stack, 20, "proof", AGENTQ_MCP_URL=f"{passthrough_mcp.url}/mcp")


@pytest.fixture
def proving(proving_stack: Stack, workers: Workers) -> Stack:
    """A stack in front of ``passthrough_mcp``, so only the worker's token proof finds a bad
    token; its worker is idle when handed out."""
    workers.shared(proving_stack)
    return proving_stack


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
