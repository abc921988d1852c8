"""The worker's Celery application: ``celery -A worker.app worker`` (or ``agentq worker``).

It runs Celery's threads pool with one slot per job in flight; each slot hands its job to the
process's event loop (``worker.event_loop``). While it runs it keeps a heartbeat key in Redis, so
tests, ``agentq`` and health checks can tell that a worker is up without asking Celery.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any

from celery import signals

from agentq.celery_app import make_celery
from agentq.logs import configure_logging, get_logger
from agentq.settings import get_settings
from agentq.store import KEY_PREFIX, connect

HEARTBEAT_SECONDS = 10.0
HEARTBEAT_TTL = 30

settings = get_settings()
app = make_celery(settings)
app.conf.imports = ["worker.tasks"]

log = get_logger(__name__)
_heartbeat_stop = threading.Event()


def heartbeat_key(hostname: str) -> str:
    return f"{KEY_PREFIX}:worker:{hostname}"


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Our logging instead of Celery's: structlog, JSON off a TTY, secrets redacted."""
    configure_logging(settings.log_level, settings.log_format)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"agentq@{os.uname().nodename}"
    key = heartbeat_key(hostname)
    client = connect(settings.redis_url)
    info = json.dumps(
        {
            "hostname": hostname,
            "pid": os.getpid(),
            "started_at": time.time(),
            "concurrency": settings.worker_concurrency,
        }
    )

    def beat() -> None:
        while True:
            try:
                client.set(key, info, ex=HEARTBEAT_TTL)
            except Exception as exc:  # Redis down: keep trying, the broker will say the rest
                log.warning("heartbeat failed", error=str(exc))
            if _heartbeat_stop.wait(HEARTBEAT_SECONDS):
                break
        with contextlib.suppress(Exception):  # best effort on the way out
            client.delete(key)

    threading.Thread(target=beat, name="agentq-heartbeat", daemon=True).start()
    log.info("worker ready", hostname=hostname, concurrency=settings.worker_concurrency)


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    _heartbeat_stop.set()
