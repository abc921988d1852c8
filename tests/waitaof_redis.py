"""A Redis with ``WAITAOF`` (7.2+) for the tests marked ``waitaof``, built while the suite runs.

The machine's redis-server (Debian 12's 7.0) has no ``WAITAOF``, so the tests of durable writes
on a server that has it use Redis 8.0.2 built from its pinned source (``doubles.redis_build``;
about 40 s cold, cached after). This plugin (registered by ``tests/conftest.py``) starts that
build in a thread when collection is done and a selected test is marked ``waitaof``, and runs
those tests after the others, so the build hides behind the suite. The fixture
``waitaof_redis_binary`` waits for it; where the source cannot be fetched or nothing can
compile it, the tests skip with that reason, which ``-ra`` prints.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from doubles import redis_build

MARKER = "waitaof"
WAIT_SECONDS = 600


class _Build:
    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.binary: Path | None = None
        self.error: BaseException | None = None
        self.cached = redis_build.cached_binary() is not None
        self.seconds = 0.0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="redis-build", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.binary = redis_build.redis_server_with_waitaof()
        except BaseException as exc:  # handed to the tests
            self.error = exc
        self.seconds = time.monotonic() - started

    def result(self) -> Path:
        if self.thread is None:
            self.start()
        assert self.thread is not None
        self.thread.join(timeout=WAIT_SECONDS)
        if isinstance(self.error, redis_build.RedisBuildUnavailable):
            pytest.skip(f"no Redis with WAITAOF: {self.error}")
        if self.error is not None:
            raise self.error
        if self.binary is None:
            raise TimeoutError(f"building Redis {redis_build.VERSION} took over {WAIT_SECONDS}s")
        return self.binary

    def summary(self) -> str:
        how = "cached" if self.cached else f"built in {self.seconds:.0f}s"
        if self.error is not None:
            how = f"not available: {self.error}"
        return f"redis-server {redis_build.VERSION} (WAITAOF) for the durable-write tests: {how}"


_BUILD = pytest.StashKey[_Build]()


def _build(config: pytest.Config) -> _Build:
    if _BUILD not in config.stash:
        config.stash[_BUILD] = _Build()
    return config.stash[_BUILD]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: needs a Redis with WAITAOF (7.2+), built in the background; runs late",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker(MARKER) is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker(MARKER) is not None for item in session.items):
        _build(session.config).start()


@pytest.fixture(scope="session")
def waitaof_redis_binary(request: pytest.FixtureRequest) -> Path:
    return _build(request.config).result()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    build = _build(config)
    if build.thread is not None:
        terminalreporter.write_line(build.summary())
