"""The worker's Celery application: ``celery -A worker.app worker`` (or ``agentq worker``).

It runs Celery's threads pool with one slot per job in flight; each slot hands its job to the
process's event loop (``worker.event_loop``). While it runs it keeps a heartbeat key in Redis
(other workers rerun the jobs of a worker whose heartbeat expired; tests and health checks use it
to tell a worker is up) and a maintenance thread (``worker.maintenance``).

On SIGTERM Celery stops taking messages and waits for running tasks; after
``AGENTQ_SHUTDOWN_GRACE_SECONDS`` the jobs still running are stopped and requeued.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from celery import signals
from prometheus_client import start_http_server

from agentq.celery_app import make_celery
from agentq.connections import connect
from agentq.dispatch import Dispatcher
from agentq.logs import configure_logging, get_logger
from agentq.settings import get_settings
from agentq.store import WORKER_PREFIX, JobStore
from worker.gc_tuning import settle
from worker.inflight import inflight
from worker.maintenance import Maintenance
from worker.supervisor import parent_gone

settings = get_settings()
app = make_celery(settings)
app.conf.imports = ["worker.tasks"]

log = get_logger(__name__)
_heartbeat_stop = threading.Event()
_draining = threading.Event()  # set at SIGTERM: this worker's slots leave the dispatch window
_hostnames: list[str] = []
_maintenance: list[Maintenance] = []
_heartbeats: list[threading.Thread] = []
_supervisor: list[int] = []  # the pid of the supervisor that started this process, if any


def run(concurrency: int, supervisor_pid: int | None = None) -> None:
    """Run this process as a worker with ``concurrency`` slots until it is stopped.

    Under ``agentq worker --processes N`` the supervisor's pid is given: it is part of the Celery
    hostname (``agentq-<supervisor>-<pid>@host``, unique per process, so a restarted child never
    takes a dead one's name and its jobs are recovered), and the worker stops by itself if the
    supervisor goes away.
    """
    name = (
        f"agentq-{os.getpid()}"
        if supervisor_pid is None
        else f"agentq-{supervisor_pid}-{os.getpid()}"
    )
    if supervisor_pid is not None:
        _supervisor.append(supervisor_pid)
    code: int | str | None = 0
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--queues={settings.queue}",
                f"--hostname={name}@%h",
                f"--loglevel={settings.log_level}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    except SystemExit as exc:
        code = exc.code
    # Celery has shut down: every job is recorded or requeued and the heartbeat key deleted.
    # Tearing down the interpreter (its thousands of modules) would take another second or
    # more, on every deploy and restart; flush what is buffered and leave.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


def heartbeat_key(hostname: str) -> str:
    return WORKER_PREFIX + hostname


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Our logging instead of Celery's: structlog, JSON off a TTY, secrets redacted."""
    configure_logging(settings.log_level, settings.log_format)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"agentq@{os.uname().nodename}"
    key = heartbeat_key(hostname)
    client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
    info = json.dumps(
        {
            "hostname": hostname,
            "pid": os.getpid(),
            "started_at": time.time(),
            "concurrency": settings.worker_concurrency,
        }
    )

    ttl = settings.heartbeat_ttl_seconds
    dispatcher = Dispatcher.for_settings(client, settings)

    def beat() -> None:
        while True:
            if _supervisor and parent_gone(_supervisor[0]):
                log.warning("the supervisor has gone; stopping", supervisor_pid=_supervisor[0])
                os.kill(os.getpid(), signal.SIGTERM)
                _supervisor.clear()
            try:
                client.set(key, info, ex=ttl)
                if not _draining.is_set():
                    dispatcher.register_worker(hostname, settings.worker_concurrency)
            except Exception as exc:  # Redis down: keep trying, the broker will say the rest
                log.warning("heartbeat failed", error=str(exc))
            if _heartbeat_stop.wait(ttl / 3):
                break
        with contextlib.suppress(Exception):  # best effort on the way out
            client.delete(key)
            dispatcher.unregister_worker(hostname)

    _hostnames.append(hostname)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    thread = threading.Thread(target=beat, name="agentq-heartbeat", daemon=True)
    thread.start()
    _heartbeats.append(thread)
    maintenance = Maintenance(
        JobStore.for_settings(client, settings), dispatcher, app, settings, hostname
    )
    maintenance.start()
    _maintenance.append(maintenance)
    settle()  # last: what was loaded to get here is frozen (worker.gc_tuning)
    log.info("worker ready", hostname=hostname, concurrency=settings.worker_concurrency)


@signals.worker_shutting_down.connect
def _start_grace_period(**_: Any) -> None:
    """Let in-flight jobs finish for a while, then stop them; they are requeued, not lost."""
    grace = settings.shutdown_grace_seconds
    log.info("worker shutting down", grace_seconds=grace, in_flight=len(inflight.job_ids()))
    _draining.set()
    with contextlib.suppress(Exception):
        client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
        dispatcher = Dispatcher.for_settings(client, settings)
        for hostname in _hostnames:
            dispatcher.unregister_worker(hostname)

    def stop_the_rest() -> None:
        stopped = inflight.stop_all("shutdown")
        if stopped:
            log.warning("grace period over; requeueing unfinished jobs", jobs=stopped)

    timer = threading.Timer(grace, stop_the_rest)
    timer.daemon = True
    timer.start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    for maintenance in _maintenance:
        maintenance.stop()
    _heartbeat_stop.set()
    for thread in _heartbeats:  # it deletes the heartbeat key: let it, before the process ends
        thread.join(timeout=5)
