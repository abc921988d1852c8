"""Real parts for the tests: a private redis-server, the MCP and model doubles, Celery workers.

Every service is started here on a free loopback port and stopped by PID at the end of the
session; nothing relies on a service that happens to run on the machine.

Workers (3 to 5 s each to start from nothing, mostly Python importing) come from one place,
``workers``:

- ``worker``: the session's worker, on ``stack`` (database 0, queue ``agentq``);
- named shared stacks (``shared_stack``): ``roomy``, ``capped`` and ``proving`` here, others in
  the modules that use them; each has a Redis database and a queue of its own and one worker,
  shared by every test that asks for the stack and handed out idle (nothing queued, running or
  waiting for a retry), so a count a test takes before it acts is its own;
- the session's worker and the shared stacks' are started in the background before the first
  test, one at a time, in the order the tests will first ask for them, and only if they will;
- ``fresh_worker(stack)``: a worker of the test's own, stopped when the test ends, for a test
  that kills, stops or restarts it, or needs jobs to wait until it starts;
- ``workers.start(stack)``: a module fixture's worker of its own, which that fixture stops
  (for a stack made from module fixtures, which a shared stack cannot be).

Every worker starts from a warm process (``WarmWorkers``, ``tests/warm_worker.py``): one that
has already imported what ``agentq worker`` imports and, told its settings, runs the real
``agentq worker`` in that process, ready in under a second; one is kept ready for the next.

The summary at the end of a run says how many workers were started and how long they took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    worker_argv,
)
from producer.client import Client

# Builds the real infrahub-mcp's virtualenv and a Redis with WAITAOF in the background; runs
# the tests that need them (`contract`, `waitaof`) late.
pytest_plugins = ("tests.infrahub_mcp_server", "tests.waitaof_redis")

# Tokens the MCP double accepts. Distinctive, so a leak is found by a plain substring search.
# The steps of an attempt that calls one tool: the token is proven first (or found proven), then
# the tools the agent is offered (from the process's listing) and the prompt; the run lists nothing.
ONE_TOOL_STEPS = [
    "token_check",
    "list_tools",
    "prompt",
    "model_call",
    "tool_call",
    "model_call",
    "final_output",
]
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


@pytest.fixture
def private_redis_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a Redis of the test's own, for what would disturb other tests' workers (a
    SCRIPT FLUSH, a settling window, messages in the default queue)."""
    service = start_redis(tmp_path)
    try:
        yield service.extra["url"]
    finally:
        service.stop()


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

    def change_inventory(self, *changes: dict[str, str]) -> dict[str, Any]:
        """Change the MCP double's inventory (``POST /_double/inventory``), all or nothing."""
        response = httpx.post(
            f"{self.url}/_double/inventory", json={"changes": list(changes)}, timeout=5
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

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


WorkerKey = tuple[str, tuple[tuple[str, str], ...], int]


@dataclass
class _Shared:
    """A shared worker: started once, by whichever comes first (a test, or the prestart)."""

    stack: Stack
    processes: int
    claimed: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    service: Service | None = None
    error: Exception | None = None


class Workers:
    """Every worker process the session starts, each stopped by PID when the session ends.

    ``shared`` keeps one running worker per configuration (Redis URL, settings, processes), so
    tests that need the same one share it; ``start`` starts one more, for its caller to stop;
    ``prestart`` starts shared workers in the background, one at a time, before they are asked
    for (a start is mostly Python importing, on a core the tests leave idle).
    """

    def __init__(self, service_dir: Path, warm: bool = True) -> None:
        self.service_dir = service_dir
        self.warm = WarmWorkers(service_dir) if warm else None
        self.started: list[Service] = []
        self.startup_seconds: list[float] = []
        self._lock = threading.Lock()
        self._shared: dict[WorkerKey, _Shared] = {}
        self._stacks: dict[str, Stack] = {}
        self._background: threading.Thread | None = None
        self._closing = False

    def start(self, stack: Stack, worker_processes: int = 1) -> Service:
        """A new worker on ``stack`` (a supervisor of ``worker_processes`` if more than one)."""
        began = time.monotonic()
        if self.warm is not None:
            service = self.warm.become(stack.env, worker_processes)
        else:
            service = processes.spawn_worker(stack.env, self.service_dir, worker_processes)
        with self._lock:
            self.started.append(service)
        processes.wait_worker_ready(service, stack.redis_url, processes=worker_processes)
        with self._lock:
            self.startup_seconds.append(time.monotonic() - began)
        stack.logs.append(service.log_path)  # the leak scan reads every worker's log
        return service

    def shared(self, stack: Stack, worker_processes: int = 1, idle: bool = True) -> Service:
        """The running worker for this configuration, started on first use (or waited for, if
        the prestart is starting it); idle when returned (see ``wait_idle``) unless ``idle`` is
        false. A shared worker that died is an error, not restarted silently."""
        entry, mine = self._claim(stack, worker_processes)
        if mine:
            self._bring_up(entry)
        entry.ready.wait()
        if entry.service is None:
            raise RuntimeError("the shared worker did not start") from entry.error
        if not entry.service.alive():
            tail = entry.service.log_text()[-3000:]
            name = entry.service.name
            raise RuntimeError(f"a shared worker ({name}) died; its log ends:\n{tail}")
        if idle:
            wait_idle(stack)
        return entry.service

    def prestart(self, stacks: list[Stack]) -> None:
        """Start the shared workers of ``stacks`` in the background, in this order."""

        def run() -> None:
            for stack in stacks:
                if self._closing:
                    return
                entry, mine = self._claim(stack, 1)
                if mine:
                    self._bring_up(entry)

        self._background = threading.Thread(target=run, name="prestart-workers", daemon=True)
        self._background.start()

    def stack(self, name: str, request: pytest.FixtureRequest) -> Stack:
        """The named shared stack ``name`` (see ``shared_stack``), made once a session."""
        if name not in self._stacks:
            self._stacks[name] = SHARED_STACKS[name](request)
        return self._stacks[name]

    def stop_all(self) -> None:
        self._closing = True
        if self._background is not None:
            self._background.join()
        if self.warm is not None:
            self.warm.close()
        processes.stop_together(self.started)

    def _claim(self, stack: Stack, worker_processes: int) -> tuple[_Shared, bool]:
        key = (stack.redis_url, tuple(sorted(stack.env.items())), worker_processes)
        with self._lock:
            entry = self._shared.setdefault(key, _Shared(stack, worker_processes))
            mine, entry.claimed = not entry.claimed, True
        return entry, mine

    def _bring_up(self, entry: _Shared) -> None:
        try:
            entry.service = self.start(entry.stack, entry.processes)
        except Exception as exc:  # raised by ``shared``, in the test that asks for it
            entry.error = exc
        finally:
            entry.ready.set()


class WarmWorkers:
    """One worker process kept ready to become the next worker (``tests/warm_worker.py``): it
    has imported what ``agentq worker`` imports before it knows its settings, so a worker is
    ready in well under a second instead of 3 to 5. The process becomes a real ``agentq
    worker`` (the console script's entry point, in that process, with the worker's environment
    and command line), or execs ``agentq worker`` if the environment differs in a way that an
    early import could have seen. ``AGENTQ_TEST_COLD_WORKERS=1`` turns this off."""

    PROGRAM = Path(__file__).with_name("warm_worker.py")

    def __init__(self, service_dir: Path) -> None:
        self.service_dir = service_dir
        self._lock = threading.Lock()
        self._spare: Service | None = None
        self._closed = False
        self.used = 0  # workers that started from a warm process

    def become(self, env: dict[str, str], worker_processes: int = 1) -> Service:
        """A worker with ``env`` (added to ours, as ``launch`` does): the spare, told what to
        be; a new spare starts importing at once, for the next worker."""
        with self._lock:
            spare, self._spare = self._spare, None
            self._start_spare()
        if spare is None or not spare.alive():  # the first, or one that died: a cold start
            return processes.spawn_worker(env, self.service_dir, worker_processes)
        order = {"argv": worker_argv(worker_processes), "env": {**os.environ, **env}}
        stdin = spare.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(order).encode() + b"\n")
            stdin.close()
        except BrokenPipeError:  # it died just now: a cold start
            spare.stop()
            return processes.spawn_worker(env, self.service_dir, worker_processes)
        with self._lock:
            self.used += 1
        return spare

    def warm_up(self) -> None:
        """Start the first spare now, if there is none."""
        with self._lock:
            if self._spare is None:
                self._start_spare()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.stop()

    def _start_spare(self) -> None:
        if self._closed:
            return
        port = free_port()  # names its log, like spawn_worker's
        argv = [sys.executable, str(self.PROGRAM), agentq_command()]
        self._spare = processes.launch(
            f"worker-{port}", argv, port, self.service_dir, stdin=subprocess.PIPE
        )


def wait_idle(stack: Stack, timeout: float = 60) -> None:
    """Until nothing in the stack's Redis database waits to be sent, is sent and not started,
    runs, or waits for a retry: a test on a shared worker then finds it doing nothing else."""
    client = redis.Redis.from_url(stack.redis_url)

    def idle() -> bool:
        pipe = client.pipeline(transaction=False)
        pipe.llen(LANES_KEY).zcard(SENT_KEY).zcard(RUNNING_KEY).zcard(DELAYED_KEY)
        return not any(pipe.execute())

    wait_until(idle, timeout, what=f"{stack.redis_url} to be idle")


# Named shared stacks, by fixture name: how each is made (from session-scoped fixtures only).
SHARED_STACKS: dict[str, Callable[[pytest.FixtureRequest], Stack]] = {}


def shared_stack(name: str, make: Callable[[pytest.FixtureRequest], Stack]) -> Any:
    """Declare a named shared stack; returns its fixture, to bind to ``name`` (here or in a
    test module). The fixture hands out ``make``'s stack, made once a session, with its one
    worker running and idle; the worker is prestarted when the session's tests use it."""
    if name in SHARED_STACKS:
        raise ValueError(f"a shared stack named {name} is declared twice")
    SHARED_STACKS[name] = make

    @pytest.fixture(name=name)
    def fixture(request: pytest.FixtureRequest, workers: Workers) -> Stack:
        stack = workers.stack(name, request)
        workers.shared(stack)
        return stack

    return fixture


WORKERS: list[Workers] = []  # the session's, for the summary


@pytest.fixture(scope="session")
def workers(stack: Stack, service_dir: Path) -> Iterator[Workers]:
    # After ``stack``: the workers stop before the Redis and doubles they use.
    started = Workers(service_dir, warm=os.environ.get("AGENTQ_TEST_COLD_WORKERS") != "1")
    WORKERS.append(started)
    yield started
    started.stop_all()


@pytest.fixture(scope="session", autouse=True)
def prestarted_workers(request: pytest.FixtureRequest) -> None:
    """Before the first test: start, in the background and in the order the tests will first
    ask for them, the shared workers that the session's tests use (none if they use none)."""
    wanted: list[str] = []
    fresh = False
    for item in request.session.items:
        for name in getattr(item, "fixturenames", ()):
            if (name == "worker" or name in SHARED_STACKS) and name not in wanted:
                wanted.append(name)
            fresh = fresh or name in ("fresh_worker", "workers")
    if not wanted and not fresh:
        return
    started: Workers = request.getfixturevalue("workers")
    if started.warm is not None:
        started.warm.warm_up()
    if not wanted:
        return
    stack: Stack = request.getfixturevalue("stack")
    started.prestart(
        [stack if name == "worker" else started.stack(name, request) for name in wanted]
    )


@pytest.fixture(scope="session")
def worker(stack: Stack, workers: Workers) -> Service:
    """The session's worker, on ``stack``. Not waited idle: database 0 also holds job records
    that tests write directly (``tests/test_store.py``), which no worker may ever end."""
    return workers.shared(stack, idle=False)


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
            + (f"; {started.warm.used} from a warm process" if started.warm else "")
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
def passthrough_mcp(service_dir: Path) -> Iterator[Double]:
    """An MCP double that checks tokens like the real server with token passthrough: the
    handshake, tools/list and prompts/get need none; only reads that reach Infrahub check it."""
    double = start_mcp_double(service_dir, "--auth-mode", "passthrough", name="mcp-passthrough")
    yield double
    double.service.stop()


@pytest.fixture(scope="session")
def changing_mcp(service_dir: Path) -> Iterator[Double]:
    """An MCP double of its own, whose inventory tests change between report runs."""
    double = start_mcp_double(service_dir, name="mcp-changing")
    yield double
    double.service.stop()


def session_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue("stack")
    return stack


# A worker with what several tests need and no test minds: task events, a metrics port
# (AGENTQ_WORKER_METRICS_PORT), webhooks with a secret and allowed to loopback over http, write
# tools allowed when a job asks, a model name the shipped price table prices. Only
# tests/test_dashboard.py submits as TOKEN_B here, so its page shows its own.
roomy = shared_stack(
    "roomy",
    lambda request: own_stack(
        session_stack(request),
        9,
        "roomy",
        AGENTQ_TASK_EVENTS="true",
        AGENTQ_WORKER_METRICS_PORT=str(free_port()),
        AGENTQ_WEBHOOK_SECRET=generate_webhook_secret(),
        AGENTQ_WEBHOOK_ALLOW_PRIVATE="true",  # the tests' receivers listen on loopback
        AGENTQ_WEBHOOK_ALLOW_HTTP="true",
        AGENTQ_ALLOW_WRITE_TOOLS="true",
        AGENTQ_MODEL="gpt-5-mini",  # the double, priced as the shipped table prices this model
    ),
)

# A tenant has at most 3 jobs in flight, on a worker with 10 slots and the slow model: a cap
# (a tenant's, or a batch's below it) shows as a peak of running jobs.
capped = shared_stack(
    "capped",
    lambda request: own_stack(
        session_stack(request),
        7,
        "capped",
        AGENTQ_WORKER_CONCURRENCY="10",
        AGENTQ_TENANT_MAX_INFLIGHT="3",
        OPENAI_BASE_URL=f"{request.getfixturevalue('slow_model').url}/v1",
    ),
)

# The Responses API instead of Chat Completions (tests/test_pipeline.py, test_tool_bridge.py).
responses_worker = shared_stack(
    "responses_worker",
    lambda request: own_stack(
        session_stack(request), 25, "responses-api", AGENTQ_MODEL_API="responses"
    ),
)

# In front of passthrough_mcp, so only the worker's token proof finds a bad token.
proving = shared_stack(
    "proving",
    lambda request: own_stack(
        session_stack(request),
        20,
        "proof",
        AGENTQ_MCP_URL=f"{request.getfixturevalue('passthrough_mcp').url}/mcp",
    ),
)


class Receiver:
    """A webhook receiver on loopback that fails its first ``failures`` requests with 500."""

    def __init__(self, failures: int) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k: v for k, v in self.headers.items()}, body))
                status = 500 if len(receiver.requests) <= receiver.failures else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver whose first request fails with 500."""
    server = Receiver(failures=1)
    yield server
    server.server.shutdown()


# Scheduled reports over an inventory that changes between runs (tests/test_report_changes.py),
# with webhooks to loopback for their notifications.
reporting = shared_stack(
    "reporting",
    lambda request: own_stack(
        session_stack(request),
        6,
        "reporting",
        AGENTQ_MCP_URL=f"{request.getfixturevalue('changing_mcp').url}/mcp",
        AGENTQ_WEBHOOK_SECRET=generate_webhook_secret(),
        AGENTQ_WEBHOOK_ALLOW_PRIVATE="true",
        AGENTQ_WEBHOOK_ALLOW_HTTP="true",
    ),
)


# What an audit costs (tests/test_cost.py): a model double of its own, whose knobs its tests
# change, and a price table of the tests' own; on both model APIs.
PRICED = "gpt-test"
UNPRICED = "gpt-test-backup"  # the chat stack's fallback: not in the table
PRICES_TABLE: dict[str, Any] = {
    "as_of": "2026-12-01",
    "source": "tests/test_cost.py",
    "models": {
        PRICED: {
            "default": {"input": 2.0, "cached_input": 0.5, "output": 8.0},
            "flex": {"input": 1.0, "cached_input": 0.25, "output": 4.0},
        }
    },
}


@pytest.fixture(scope="session")
def cost_model(service_dir: Path) -> Iterator[Double]:
    double = start_model_double(service_dir)
    yield double
    double.service.stop()


def cost_env(request: pytest.FixtureRequest) -> dict[str, str]:
    service_dir: Path = request.getfixturevalue("service_dir")
    prices = service_dir / "test-prices.json"
    prices.write_text(json.dumps(PRICES_TABLE))
    return {
        "AGENTQ_PRICES_FILE": str(prices),
        "AGENTQ_MODEL": PRICED,
        "AGENTQ_MODEL_MAX_RETRIES": "0",
        "AGENTQ_RETRY_BASE_SECONDS": "0.05",
        "AGENTQ_FLEX_TRIES": "2",
        "AGENTQ_FLEX_BACKOFF_SECONDS": "0.05",
        "AGENTQ_PROMPT_CACHE_KEY": "agentq",  # sent to this OpenAI-compatible endpoint too
        "AGENTQ_WORKER_METRICS_PORT": str(free_port()),
        "OPENAI_BASE_URL": f"{request.getfixturevalue('cost_model').url}/v1",
    }


cost_chat = shared_stack(
    "cost_chat",
    lambda request: own_stack(
        session_stack(request),
        14,
        "cost-chat",
        AGENTQ_MODEL_API="chat_completions",
        AGENTQ_MODEL_FALLBACKS=UNPRICED,
        **cost_env(request),
    ),
)
cost_responses = shared_stack(
    "cost_responses",
    lambda request: own_stack(
        session_stack(request),
        16,
        "cost-responses",
        AGENTQ_MODEL_API="responses",
        **cost_env(request),
    ),
)


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
