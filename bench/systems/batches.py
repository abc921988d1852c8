"""agentq's batch path: how fast a big batch is accepted, and whether it crowds out another tenant.

Two figures the per-job runs cannot give: the enqueue rate of ``Client.submit_batch`` with no
worker running (what accepting a batch costs, each job's token sealed on its own), and how long
another tenant's single question waits to start while one tenant's big batch is running on the
same worker. Both use the worker environment of ``bench.systems.agentq``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from bench.measure import OTHER_TOKEN, TOKEN, Doubles
from bench.systems.agentq import agentq_env, client_for
from doubles.processes import start_worker, wait_until


def measure_enqueue(d: Doubles, db: int, questions: int) -> dict[str, Any]:
    """A batch of ``questions`` submitted with no worker running: how fast it is accepted."""
    env = agentq_env(d, d.db(db), 1)
    env["AGENTQ_MAX_BATCH_QUESTIONS"] = str(max(questions, 10_000))
    client = client_for(env)
    items = [f"Which interfaces of device {i} are down?" for i in range(questions)]
    started = time.perf_counter()
    client.submit_batch(items, TOKEN)
    seconds = time.perf_counter() - started
    return {
        "method": "submit_batch",
        "questions": questions,
        "seconds": seconds,
        "jobs_per_s": questions / seconds,
    }


def measure_fairness(d: Doubles, workdir: Path, db: int, backlog: int) -> dict[str, Any]:
    """Tenant A's ``backlog``-question batch is running when tenant B asks one question: how
    long B's question waits to start (the default tenant cap, 50 worker slots). B asks once
    A's first jobs have ended (50 of them, or a third of a smaller backlog), so A's lane is
    full and running, not still starting."""
    started_enough = min(50, max(1, backlog // 3))
    env = {**agentq_env(d, d.db(db), 50), "AGENTQ_TENANT_MAX_INFLIGHT": "50"}
    worker = start_worker(env, workdir, d.db(db))
    try:
        client = client_for(env)
        batch_id = client.submit_batch(
            [f"Audit device {i}" for i in range(backlog)], TOKEN, max_inflight=50
        )
        wait_until(
            lambda: (b := client.batches.load(batch_id)) is not None and b.ended >= started_enough,
            600,
            what="tenant A's batch to be running",
        )
        lone = client.submit("Which sites are there?", OTHER_TOKEN)
        job = client.wait(lone, OTHER_TOKEN, timeout=600, poll_interval=0.05)
        batch = client.batches.load(batch_id)
        client.cancel_batch(batch_id, TOKEN)
    finally:
        worker.stop(signal.SIGTERM, timeout=30)
    waited = (job.started_at or job.created_at) - job.created_at
    return {
        "backlog": backlog,
        "other_tenant_wait_s": waited,
        "backlog_waiting_then": batch.counts.get("queued", 0) if batch else None,
    }
