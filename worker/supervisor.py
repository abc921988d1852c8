"""``agentq worker --processes N``: N worker processes on one host, each with its own event loop.

A worker process runs all its jobs on one asyncio loop, so it uses one core, and the Agents SDK
itself spends tens of milliseconds of CPU per job: a busy host needs about one process per core.
Celery's prefork pool cannot provide them (a job needs the threads pool feeding one loop), so the
supervisor starts N ordinary worker processes (``python -m worker``) and looks after them:

- a child that dies is started again after a short backoff (longer if it keeps dying at once);
  the jobs it was running are recovered by the other workers through its expired heartbeat,
  exactly as for any dead worker, since every child has its own Celery hostname;
- SIGTERM or SIGINT is passed on to every child; each drains as usual (its grace period,
  then requeues what is left) and the supervisor exits when all have;
- the children run in their own session, so a terminal's Ctrl-C reaches them only through the
  supervisor (Celery takes a second SIGINT as "stop now"), and each child stops by itself if the
  supervisor disappears (``worker.app`` compares its parent with the group it was given).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from agentq.logs import get_logger

log = get_logger(__name__)

POLL_SECONDS = 0.5
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# A child that lived this long is taken to have started well: its next restart is quick again.
HEALTHY_AFTER_SECONDS = 30.0


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float = 0.0


class Supervisor:
    """Runs ``processes`` worker processes until told to stop."""

    def __init__(self, processes: int, concurrency: int, metrics_port: int) -> None:
        self.processes = processes
        self.concurrency = concurrency
        self.metrics_port = metrics_port
        self.children = [Child(index) for index in range(processes)]
        self._stopping: int | None = None  # the signal that asked us to stop

    def child_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "worker",
            f"--concurrency={self.concurrency}",
            f"--group={os.getpid()}",
        ]

    def child_env(self, child: Child) -> dict[str, str]:
        env = dict(os.environ)
        if self.metrics_port:  # one port per process: the first child has the configured one
            env["AGENTQ_WORKER_METRICS_PORT"] = str(self.metrics_port + child.index)
        return env

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            self.child_argv(),
            env=self.child_env(child),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        log.info("worker process started", index=child.index, pid=child.process.pid)
        if self._stopping is not None:  # the signal came while it was being started
            child.process.send_signal(self._stopping)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Stop restarting children, and pass the signal on: a second Ctrl-C reaches them too,
        which Celery takes as "stop now" (what a user pressing it twice means)."""
        if self._stopping is None:
            self._stopping = signum
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signum)

    def run(self) -> int:
        """Start the children and keep them running; returns the exit code once all ended."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("supervisor started", processes=self.processes, concurrency=self.concurrency)
        for child in self.children:
            self.start(child)
        while True:
            now = time.monotonic()
            ended = [c for c in self.children if c.process is None or c.process.poll() is not None]
            if self._stopping is not None:
                if len(ended) == len(self.children):
                    log.info("supervisor stopped", signal=signal.Signals(self._stopping).name)
                    return 0
            else:
                for child in ended:
                    self._replace(child, now)
            time.sleep(POLL_SECONDS)

    def _replace(self, child: Child, now: float) -> None:
        """Schedule a dead child's replacement (backing off if it died young), or start it."""
        if child.process is not None:  # it has just died
            lived = now - child.started_at
            child.backoff = (
                FIRST_BACKOFF_SECONDS
                if lived >= HEALTHY_AFTER_SECONDS
                else min(child.backoff * 2, MAX_BACKOFF_SECONDS)
            )
            child.restart_at = now + child.backoff
            log.warning(
                "worker process died; starting another",
                index=child.index,
                exit_code=child.process.returncode,
                lived_seconds=round(lived, 1),
                restart_in_seconds=child.backoff,
            )
            child.process = None
        if now >= child.restart_at:
            self.start(child)


def parent_gone(group: int | None) -> bool:
    """For a supervised child: whether its supervisor has gone (the child was re-parented)."""
    return group is not None and os.getppid() != group
