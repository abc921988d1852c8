"""agentq's batch path: how fast a big batch is accepted, and whether it crowds out another tenant.

Figures the per-job runs cannot give: the enqueue rate of ``Client.submit_batch`` with no
worker running (what accepting a batch costs, each job's token sealed on its own), what durable
writes add to it (``measure_durable_enqueue``), and how long
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
from doubles.processes import start_redis, start_worker, wait_until
from doubles.redis_build import RedisBuildUnavailable, redis_server_with_waitaof


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


def measure_durable_enqueue(
    d: Doubles, workdir: Path, questions: int, singles: int = 20
) -> list[dict[str, Any]]:
    """What durable writes (``AGENTQ_DURABLE_WRITES``) cost a producer, side by side: the same
    batch (and ``singles`` single submits) into a Redis of its own with the append-only file
    on, with durable writes off (``everysec``, nothing waited for), on through ``appendfsync
    always``, and on through WAITAOF with ``everysec`` (Redis 7.2+, built from source if it
    can be)."""
    waitaof: Path | None
    try:
        waitaof = redis_server_with_waitaof()
    except (RedisBuildUnavailable, RuntimeError):
        waitaof = None
    setups = [
        ("off, everysec", None, "everysec", "off"),
        ("on, appendfsync always", None, "always", "on"),
        ("on, WAITAOF + everysec", waitaof, "everysec", "on"),
    ]
    items = [f"Which interfaces of device {i} are down?" for i in range(questions)]
    rows: list[dict[str, Any]] = []
    for label, binary, fsync, mode in setups:
        if mode == "on" and fsync == "everysec" and binary is None:
            rows.append({"setup": label, "skipped": "no Redis 7.2+ to run WAITAOF on"})
            continue
        redis = start_redis(
            workdir / f"durable-{len(rows)}", appendonly=True, binary=binary,
            extra=("--appendfsync", fsync),
        )  # fmt: skip
        try:
            env = agentq_env(d, redis.extra["url"], 1)
            env["AGENTQ_MAX_BATCH_QUESTIONS"] = str(max(questions, 10_000))
            env["AGENTQ_DURABLE_WRITES"] = mode
            client = client_for(env)
            started = time.perf_counter()
            client.submit_batch(items, TOKEN)
            batch_seconds = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(singles):
                client.submit(f"Which sites are there? ({i})", TOKEN)
            single_seconds = (time.perf_counter() - started) / singles
        finally:
            redis.stop()
        rows.append(
            {
                "setup": label,
                "plan": client.store.durable_plan(),
                "batch_jobs_per_s": questions / batch_seconds,
                "single_submit_ms": single_seconds * 1000,
            }
        )
    return rows


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
