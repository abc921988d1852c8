"""The real infrahub-mcp server's virtualenv for the contract tests, built while the suite runs.

The contract tests (``tests/test_contract_infrahub_mcp.py``, marked ``contract``) run the real
server, which needs Python 3.13 and its ~80 pinned packages
(``tests/contract/infrahub-mcp-requirements.txt``). agentq's own interpreter may be older, so
the server gets a virtualenv of its own, built once and cached (:class:`VirtualenvBuild`). Built
cold, as on every CI run, that takes about 90 s, nearly all of it downloading and unpacking. So
this plugin (registered by ``tests/conftest.py``) hides the build behind the rest of the suite:

- when collection is done and a selected test is marked ``contract``, it starts the build in a
  thread (a run that selects none builds nothing; ``--collect-only`` neither);
- it moves the ``contract`` tests after every other test, so the build has the whole suite to
  finish in; the ``last`` tests (the leak scans) still run after them, since conftest's sort by
  ``last`` runs after this one and is stable;
- the tests take the result from :func:`build_for` and wait only if the build is not done yet;
- the summary says how the virtualenv came about (cached; or built in N s, of which the tests
  waited M s; or why not), and a build still running when the session ends is stopped.

The build's output goes to a log file beside the cache (``build-<key>.log``), never to the
terminal. When the virtualenv cannot be had for a reason that is not a bug (no Python 3.13, or a
package index that cannot be reached), the tests skip with that reason, which ``-ra`` prints.
Anything else (a pin that does not exist, a server that does not import) fails them, quoting the
end of the log and naming it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

SERVER = "infrahub-mcp"
SERVER_VERSION = "1.2.0"
REQUIREMENTS = Path(__file__).parent / "contract" / "infrahub-mcp-requirements.txt"
READY_MARKER = ".agentq-ready.json"
MARKER = "contract"
# The longest a test waits for a build (below the contract module's pytest timeout, so the
# failure names the log), and the longest pip may take.
WAIT_SECONDS = 840
PIP_SECONDS = 600

# What pip prints when it cannot reach the index (then the tests skip rather than fail). Not "No
# matching distribution found" on its own: that is also what a pin of a version that does not
# exist gets, and a broken pin must fail.
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|No route to host|"
    r"Connection refused|ConnectTimeout|Read timed out|ProxyError",
    re.IGNORECASE,
)


class ServerUnavailable(Exception):
    """The real server cannot be installed here for a reason that is not a bug: skip."""


class BuildStopped(RuntimeError):
    """The session ended (interrupted) while the build was still running, so it was stopped."""


def find_python313() -> str | None:
    """A working Python 3.13 interpreter: ``python3.13`` on PATH, else one that pyenv installed.

    Each candidate is run, because a pyenv shim is on PATH whether or not its version is
    selected (it then exits with an error). The answer is the interpreter's own path, not the
    shim's, so the cache key names the interpreter that built the virtualenv.
    """
    candidates: list[str] = []
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(on_path)
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for root in dict.fromkeys(r for r in roots if r):
        candidates += sorted(glob.glob(f"{root}/versions/3.13*/bin/python3.13"), reverse=True)
    for candidate in dict.fromkeys(candidates):
        try:
            probe = subprocess.run(
                [
                    candidate,
                    "-c",
                    "import sys; print(*sys.version_info[:2]); print(sys.executable)",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = [*probe.stdout.splitlines(), "", ""]
        if probe.returncode == 0 and lines[0].split() == ["3", "13"] and lines[1]:
            return lines[1]
    return None


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/agentq/infrahub-mcp-1.2.0-py3.13`` (``~/.cache`` without it)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "agentq" / f"{SERVER}-{SERVER_VERSION}-py3.13"


def pip_failure(output: str, status: int, log_path: Path) -> Exception:
    """Why ``pip install`` failed: :class:`ServerUnavailable` (skip) if it could not reach the
    package index, else a ``RuntimeError`` (fail) quoting the end of its output."""
    unreachable = [line for line in output.splitlines() if _UNREACHABLE.search(line)]
    if unreachable:
        return ServerUnavailable(
            f"cannot install {SERVER}=={SERVER_VERSION}: the package index is "
            f"unreachable ({unreachable[-1].strip()[:300]})"
        )
    return RuntimeError(
        f"pip install -r {REQUIREMENTS.name} failed (exit {status}); its log: {log_path}\n"
        f"{output[-4000:]}"
    )


def _ready(venv: Path) -> bool:
    return (venv / READY_MARKER).is_file() and (venv / "bin" / "python").exists()


def _log_tail(log_path: Path, start: int = 0, limit: int = 4000) -> str:
    with log_path.open("rb") as log:
        log.seek(start)
        return log.read().decode(errors="replace")[-limit:]


class VirtualenvBuild:
    """The real server's virtualenv: found in the cache, or built there, once, in a thread.

    Where: ``<cache_root()>/<key>``, the key a hash of the pinned requirements file and of the
    interpreter (path and full version), so a new pin or a new interpreter gets a new
    virtualenv and the old one is simply no longer used.

    How: it is built in a temporary directory beside its final place, checked (the pinned
    server imports), marked ready, and only then renamed into place: a rename is atomic, so a
    run killed while building leaves a temporary directory that nothing mistakes for a ready
    virtualenv (the next build sweeps it away once it is an hour old), and two runs building at
    once both succeed (the second rename fails, and that run uses the first one's). Because the
    virtualenv is moved after it is built, nothing runs its console scripts (their ``#!`` line
    names the temporary path): the server runs as ``<venv>/bin/python -m infrahub_mcp``. The
    steps run at a lower CPU priority (``nice``), so the tests running meanwhile keep theirs.
    """

    def __init__(self) -> None:
        self.venv: Path | None = None
        self.log_path: Path | None = None
        self.error: BaseException | None = None
        self.build_seconds: float | None = None  # None: found in the cache, not built
        self.waited_seconds = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._done = threading.Event()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start finding or building the virtualenv in a thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._main, name=f"{SERVER}-virtualenv", daemon=True
                )
                self._thread.start()

    def python(self, timeout: float = WAIT_SECONDS) -> Path:
        """The virtualenv's interpreter, once the build is done (started now if it was not).

        Raises :class:`ServerUnavailable` (skip), or what made the build fail (fail).
        """
        self.start()
        began = time.monotonic()
        done = self._done.wait(timeout)
        self.waited_seconds += time.monotonic() - began
        if not done:
            raise RuntimeError(
                f"the {SERVER} virtualenv is still being built after {timeout:.0f}s of waiting; "
                f"its log: {self.log_path}"
            )
        if self.error is not None:
            raise self.error
        assert self.venv is not None
        return self.venv / "bin" / "python"

    def stop(self) -> None:
        """Stop a build still running (an interrupted session): the step's process is ours,
        signalled by its PID, and the build's temporary directory is removed."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def summary(self) -> str:
        """One line for the end of the run."""
        what = f"{SERVER} {SERVER_VERSION} virtualenv"
        if not self._done.is_set() or isinstance(self.error, BuildStopped):
            return f"{what}: build stopped unfinished as the session ended (log: {self.log_path})"
        if isinstance(self.error, ServerUnavailable):
            return f"{what}: unavailable, contract tests skipped: {self.error}"
        if self.error is not None:
            first = str(self.error).splitlines()[0] if str(self.error) else repr(self.error)
            log = "" if str(self.log_path) in first else f" (log: {self.log_path})"
            return f"{what}: BUILD FAILED: {first}{log}"
        waited = f"the contract tests waited {self.waited_seconds:.0f} s for it"
        if self.build_seconds is None:
            return f"{what}: cached at {self.venv}; {waited}"
        return (
            f"{what}: built in {self.build_seconds:.0f} s in the background at {self.venv} "
            f"(log: {self.log_path}); {waited}"
        )

    # --- the build ------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            python = find_python313()
            if python is None:
                raise ServerUnavailable(
                    f"{SERVER} {SERVER_VERSION} needs Python 3.13: "
                    "no python3.13 on PATH or under pyenv"
                )
            self.venv = self._virtualenv(python)
        except BaseException as error:
            self.error = error
        finally:
            self._done.set()

    def _virtualenv(self, python: str) -> Path:
        identity = subprocess.run(
            [python, "-c", "import sys; print(sys.version)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        digest = hashlib.sha256(REQUIREMENTS.read_bytes())
        digest.update(f"\0{python}\0{identity}".encode())
        key = digest.hexdigest()[:16]
        root = cache_root()
        venv = root / key
        if _ready(venv):
            return venv
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".build-*"):
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    shutil.rmtree(stale, ignore_errors=True)
        self.log_path = root / f"build-{key}.log"
        build = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
        started = time.monotonic()
        try:
            with self.log_path.open("ab") as log:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                log.write(f"\n=== {stamp} pid {os.getpid()}: building {venv} in {build}\n".encode())
                self._install(python, build, log)
            (build / READY_MARKER).write_text(
                json.dumps(
                    {
                        "requirements_sha256": hashlib.sha256(
                            REQUIREMENTS.read_bytes()
                        ).hexdigest(),
                        "python": python,
                        "python_version": identity.strip(),
                        "build_seconds": round(time.monotonic() - started, 1),
                    }
                )
            )
            try:
                build.rename(venv)
            except OSError:
                if not _ready(venv):  # not another run's finished build: a real problem
                    raise
        finally:
            shutil.rmtree(build, ignore_errors=True)  # gone after a rename; leftovers otherwise
        self.build_seconds = time.monotonic() - started
        return venv

    def _install(self, python: str, build: Path, log: IO[bytes]) -> None:
        """``python -m venv``, ``pip install`` of the pins, and a check that the server imports."""
        assert self.log_path is not None
        if self._step(log, [python, "-m", "venv", str(build)], timeout=300) != 0:
            raise RuntimeError(
                f"python -m venv failed; its log: {self.log_path}\n{_log_tail(self.log_path)}"
            )
        pip_output_starts = log.tell()
        install = self._step(
            log,
            [
                str(build / "bin" / "python"), "-m", "pip", "install",
                "--no-deps", "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
                "--timeout", "60", "--retries", "3",
                "-r", str(REQUIREMENTS),
            ],
            timeout=PIP_SECONDS,
        )  # fmt: skip
        if install != 0:
            output = _log_tail(self.log_path, pip_output_starts, limit=1_000_000)
            raise pip_failure(output, install, self.log_path)
        check = self._step(
            log,
            [
                str(build / "bin" / "python"), "-c",
                "import importlib.metadata as m, infrahub_mcp; "
                f"v = m.version('infrahub-mcp'); print(v); assert v == '{SERVER_VERSION}', v",
            ],
            timeout=120,
        )  # fmt: skip
        if check != 0:
            raise RuntimeError(
                f"the installed server does not import; its log: {self.log_path}\n"
                f"{_log_tail(self.log_path)}"
            )

    def _step(self, log: IO[bytes], argv: list[str], timeout: float) -> int:
        """Run one step with its output appended to the log; its exit status."""
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        nice = shutil.which("nice")
        with self._lock:
            if self._stopping:
                raise BuildStopped("the build was stopped: the test session ended")
            process = self._process = subprocess.Popen(
                [*([nice, "-n", "10"] if nice else []), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            status = process.wait(timeout)
            if status != 0 and self._stopping:
                raise BuildStopped("the build was stopped: the test session ended")
            return status
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"{' '.join(argv[:4])} ... took more than {timeout:.0f}s; its log: {self.log_path}"
            ) from None
        finally:
            with self._lock:
                self._process = None
            log.seek(0, os.SEEK_END)


# --- the plugin ----------------------------------------------------------------------------

_BUILD = pytest.StashKey[VirtualenvBuild]()


def build_for(config: pytest.Config) -> VirtualenvBuild:
    """The session's build (one per session, whether or not this plugin is registered)."""
    if _BUILD not in config.stash:
        config.stash[_BUILD] = VirtualenvBuild()
    return config.stash[_BUILD]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: runs the real {SERVER} server; its virtualenv is built in the background "
        "from the end of collection, and these tests run after all others but the `last` ones",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``contract`` tests after the others (conftest then moves the ``last`` ones after
    them: its sort runs after this one and keeps this order)."""
    items.sort(key=lambda item: item.get_closest_marker(MARKER) is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker(MARKER) is not None for item in session.items):
        build_for(session.config).start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    build_for(session.config).stop()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    build = build_for(config)
    if build.started:
        terminalreporter.write_line(build.summary())
