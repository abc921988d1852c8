"""A worker process started before it is needed: ``python tests/warm_worker.py AGENTQ``.

Starting ``agentq worker`` takes 3 to 5 s, most of it importing the same libraries every time,
before the test that wants the worker has told it anything. This program imports them first
(what the ``agentq`` console script imports, ``cli.main``, and the heavy libraries the worker
needs), then waits for one line on stdin: ``{"argv": [...], "env": {...}}``. With it, it becomes
that worker: the environment is replaced by ``env`` and the real ``agentq`` entry point runs with
``argv``, in this process (its pid, its log). Nothing here starts a thread, opens a connection
or reads a setting: only ``worker.app`` reads the settings at import, and it is not imported
until the worker starts with its environment.

If ``env`` differs from this process's environment in a variable that an imported library
could have read at import (anything but ``AGENTQ_*``, the OpenAI client's URL and key, which
are read when a client is made, and pytest's ``PYTEST_CURRENT_TEST``), the process execs
``agentq`` instead: a cold start, exactly as before. ``tests/conftest.py`` (``WarmWorkers``)
keeps one of these ready.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

# Imported before the worker's environment is known: none reads AGENTQ_* or the OpenAI
# variables below at import time.
PRELOAD = (
    "cli.main",
    "agents",
    "openai",
    "mcp",
    "httpx",
    "celery.worker",
    "celery.concurrency.thread",
    "celery.apps.worker",
    "kombu.transport.redis",
    "prometheus_client",
)
# Environment variables that may differ between this process and the worker it becomes (pytest
# names the current test in PYTEST_CURRENT_TEST; nothing reads it at import).
LATE_READ = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PYTEST_CURRENT_TEST")


def read_late(name: str) -> bool:
    return name.startswith("AGENTQ_") or name in LATE_READ


def main() -> None:
    agentq = sys.argv[1]
    # As under the console script: its directory first on the path, not this file's.
    sys.path[0] = os.path.dirname(agentq)
    for module in PRELOAD:
        importlib.import_module(module)
    line = sys.stdin.readline()
    if not line:  # stopped before it was needed
        return
    order = json.loads(line)
    env: dict[str, str] = order["env"]
    argv: list[str] = order["argv"]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # as launched: stdin is /dev/null
    os.close(devnull)
    changed = {name for name in set(env) | set(os.environ) if env.get(name) != os.environ.get(name)}
    if not all(read_late(name) for name in changed):
        os.execve(agentq, argv, env)  # noqa: S606 (the agentq console script, as launched)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = argv
    from cli.main import main as agentq_main

    sys.exit(agentq_main())


if __name__ == "__main__":
    main()
