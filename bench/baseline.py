"""The baseline: what a user would write first. ``celery -A bench.baseline worker``.

Prefork pool, one ``asyncio.run`` per task, fresh clients per task. The broker and result backend
come from ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os

from celery import Celery

from bench import BASELINE_QUEUE, BASELINE_TASK
from bench.naive_agent import run_once

app = Celery(
    "bench-baseline",
    broker=os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379/15"),
    backend=os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379/15"),
)
app.conf.update(
    task_default_queue=BASELINE_QUEUE,
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name=BASELINE_TASK)
def naive_job(question: str, token: str, mcp_url: str, model_url: str) -> float:
    """One job, the naive way: a new event loop and new clients; returns when it finished."""
    return asyncio.run(run_once(question, token, mcp_url, model_url))
