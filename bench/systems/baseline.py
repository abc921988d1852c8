"""The baseline: a naive Celery worker, as a user would first write it (``bench.baseline``).

The figure agentq's throughput is a multiple of, so it runs as it would really run: a ``celery
-A bench.baseline worker`` process of its own. Jobs go to it by task name from a bare Celery
app, so the orchestrator never imports the Agents SDK.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from bench import BASELINE_QUEUE, BASELINE_TASK
from bench.measure import TOKEN, Doubles, latency_figures, shape_ok, tree_cpu_seconds, work_per_job


def run_baseline(
    d: Doubles,
    workdir: Path,
    db: int,
    jobs: int,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """A naive Celery worker: prefork, concurrency 2, asyncio.run and fresh clients per task.

    Started as a real ``celery -A bench.baseline worker`` process; its results come back through
    the Redis result backend, each stamped with the time the task finished (a task that failed
    counts as failed, at the time its failure was read). ``on_ready`` runs after the warm-up,
    just before the first job is sent.
    """
    url = d.db(db)
    env = {**os.environ, "BENCH_REDIS_URL": url}
    log = workdir / "baseline-worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "bench.baseline", "worker",
                "--pool=prefork", "--concurrency=2", "--loglevel=WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-Q", BASELINE_QUEUE,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )  # fmt: skip
    # A bare client app: sends by name and reads results, without importing the Agents SDK.
    app = Celery("bench-baseline-client", broker=url, backend=url)

    def send(question: str) -> AsyncResult:
        return app.send_task(
            BASELINE_TASK, args=(question, TOKEN, d.mcp_url, d.model_url), queue=BASELINE_QUEUE
        )

    try:
        # Two warm-up tasks: both pool processes are up and have run one job (imports done).
        for result in [send("warm up") for _ in range(2)]:
            result.get(timeout=120)
        before, doubles_before = d.counters(), d.cpu_seconds()
        cpu_before = tree_cpu_seconds(worker.pid)
        if on_ready is not None:
            on_ready()
        started = time.time()
        sent = [(time.time(), send(f"Which devices are in site {i}?")) for i in range(jobs)]
        outcomes = [(t, r.get(timeout=1800, propagate=False), time.time()) for t, r in sent]
        finished = [(t, float(out)) for t, out, _ in outcomes if isinstance(out, float)]
        failed_at = [read for _, out, read in outcomes if not isinstance(out, float)]
        cpu = tree_cpu_seconds(worker.pid) - cpu_before
        doubles_cpu = d.cpu_seconds() - doubles_before
        work = work_per_job(before, d.counters(), jobs)
    finally:
        app.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    latencies = [f - t for t, f in finished] or [0.0]
    end = max([f for _, f in finished] + failed_at)
    return {
        "jobs": jobs,
        "succeeded": len(finished),
        "concurrency": 2,
        "processes": 2,
        "seconds": end - started,
        "throughput": jobs / (end - started),
        **latency_figures(latencies),
        "cpu_per_job": cpu / jobs,
        "doubles_cpu_per_job": doubles_cpu / jobs,
        "mcp_requests_per_job": work.get("mcp requests", 0.0),
        "work_per_job": work,
        "work_as_expected": shape_ok(work),
    }
