"""The Celery worker that runs agent jobs (``agentq worker``); see ``worker.app``."""

from __future__ import annotations

import os


def run_worker(concurrency: int, supervisor_pid: int | None = None) -> None:
    """Run this process as a worker with ``concurrency`` slots until it is stopped.

    The worker registers its slots for dispatch from its settings, and ``worker.app`` reads the
    settings when it is imported: so the count is put in the environment first and the app is
    imported only then. Both ``agentq worker`` and a supervisor's child (``python -m worker``)
    start here.
    """
    os.environ["AGENTQ_WORKER_CONCURRENCY"] = str(concurrency)
    from agentq.settings import get_settings

    get_settings.cache_clear()
    from worker.app import run

    run(concurrency, supervisor_pid=supervisor_pid)
