"""The jobs a worker process is running right now, so they can be stopped from outside.

The maintenance thread stops a job its owner cancelled, and shutdown stops what is left when the
grace period ends; both reach the job's asyncio task through this registry. A stopped attempt
learns why from its context and ends cleanly with its trace, instead of dying mid-write.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from worker.failures import JobContext


@dataclass
class InFlightJob:
    context: JobContext
    task: asyncio.Task[object]
    loop: asyncio.AbstractEventLoop


class InFlight:
    """Thread-safe map of job id to the task running it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, InFlightJob] = {}

    def add(self, context: JobContext) -> None:
        task = asyncio.current_task()
        assert task is not None, "InFlight.add must run inside the job's task"
        with self._lock:
            self._jobs[context.job_id] = InFlightJob(context, task, asyncio.get_running_loop())

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def stop(self, job_id: str, reason: str) -> bool:
        """Ask the job's task to stop for ``reason`` ('cancelled' or 'shutdown'); any thread."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return False
        job.context.stop_reason = job.context.stop_reason or reason
        job.loop.call_soon_threadsafe(job.task.cancel)
        return True

    def stop_all(self, reason: str) -> int:
        return sum(self.stop(job_id, reason) for job_id in self.job_ids())


inflight = InFlight()


class Claimed:
    """Thread-safe map of the jobs this process claimed (to the attempt it runs) and has not yet
    recorded the end of.

    Wider than ``inflight`` (which holds only a running attempt's task): a job is here from its
    claim to its outcome's write. After a Redis restart that lost claims, the housekeeping puts
    these back (``worker.maintenance``), so no other worker runs them a second time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, int] = {}

    def reserve(self, job_id: str) -> bool:
        """Hold ``job_id`` while this process claims it (attempt 0: not claimed yet); False if
        the process already holds it (a duplicate message of a job it claims or runs)."""
        with self._lock:
            if job_id in self._jobs:
                return False
            self._jobs[job_id] = 0
            return True

    def set_attempt(self, job_id: str, attempt: int) -> None:
        """The claim came back: the process runs ``attempt`` of the job."""
        with self._lock:
            self._jobs[job_id] = attempt

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def items(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._jobs.items())


claimed = Claimed()
