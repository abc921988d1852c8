"""agentq itself: a real ``agentq worker`` fed jobs through ``Client.submit``.

Driven as a user drives it (a separate worker process, the ordinary submit path), and measured
from agentq's own records: each job's ``created_at`` and ``finished_at`` are written by agentq,
not by the bench. ``agentq_env`` and ``client_for`` are shared with ``bench.systems.batches``,
which measures the batch path of the same worker.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentq.jobs import TERMINAL_STATUSES
from agentq.sealing import generate_key
from agentq.settings import Settings
from bench.measure import (
    TOKEN,
    Doubles,
    latency_figures,
    proc_children,
    proc_rss_mib,
    shape_ok,
    tree_cpu_seconds,
    work_per_job,
)
from doubles.processes import start_worker
from producer.client import Client

TERMINAL = frozenset(str(s) for s in TERMINAL_STATUSES)
POLL_SECONDS = 0.25


def agentq_env(d: Doubles, redis_url: str, concurrency: int) -> dict[str, str]:
    """A worker's environment (as tests/conftest.py's base_env), tuned for throughput: no
    shared limits (they cost a Redis round trip per request and are not what is measured)."""
    return {
        "AGENTQ_REDIS_URL": redis_url,
        "AGENTQ_SECRET_KEY": generate_key(),
        "AGENTQ_MCP_URL": d.mcp_url,
        "AGENTQ_MODEL": "demo-model",
        "AGENTQ_MODEL_API": "chat_completions",
        "AGENTQ_WORKER_CONCURRENCY": str(concurrency),
        "AGENTQ_TENANT_MAX_INFLIGHT": "100000",
        # One token submits every job here: no per-tenant submit quotas in the way.
        "AGENTQ_TENANT_SUBMITS_PER_MINUTE": "0",
        "AGENTQ_TENANT_MAX_QUEUED_JOBS": "0",
        "AGENTQ_MODEL_MAX_CONCURRENCY": "0",
        "AGENTQ_MCP_MAX_REQUESTS_PER_SECOND": "0",
        "AGENTQ_LOG_LEVEL": "WARNING",
        "AGENTQ_LOG_FORMAT": "json",
        "OPENAI_BASE_URL": d.model_url,
        "OPENAI_API_KEY": "dummy",
    }


def client_for(env: dict[str, str]) -> Client:
    """A producer's client with the worker's settings: the same Redis, and the same secret key,
    so that the jobs it seals are ones the worker can open."""
    values: dict[str, Any] = {
        k.removeprefix("AGENTQ_").lower(): v for k, v in env.items() if k.startswith("AGENTQ_")
    }
    return Client(Settings(**values))


def run_agentq(
    d: Doubles,
    workdir: Path,
    db: int,
    jobs: int,
    concurrency: int,
    processes: int = 1,
    env_extra: dict[str, str] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """N jobs through a real ``agentq worker`` (``--processes`` of them, each with
    ``concurrency`` slots), each job sent with ``Client.submit``. ``env_extra`` adds settings
    to the worker's environment; ``on_ready`` runs once the worker is up, just before the
    first submit.

    Latency runs from each job's submit (its ``created_at``) to its end (``finished_at``), both
    written by agentq itself; the bench polls statuses in bulk only to know when all have ended,
    and samples how many are running to show the worker really had them all in flight.
    """
    env = {**agentq_env(d, d.db(db), concurrency), **(env_extra or {})}
    worker = start_worker(env, workdir, d.db(db), processes=processes)
    # With several processes the supervisor's children do the work (the supervisor idles).
    members = proc_children(worker.pid) if processes > 1 else [worker.pid]
    try:
        client = client_for(env)
        before = d.counters()
        cpu_before, doubles_before = tree_cpu_seconds(worker.pid), d.cpu_seconds()
        if on_ready is not None:
            on_ready()
        job_ids = [
            str(client.submit(f"Which devices are in site {i}?", TOKEN)) for i in range(jobs)
        ]
        submitted = time.time()
        pending, peak_running = list(job_ids), 0
        deadline = time.monotonic() + 1800
        while pending:
            statuses = client.store.statuses(pending)
            peak_running = max(peak_running, sum(s == "running" for s in statuses.values()))
            pending = [i for i, s in statuses.items() if s not in TERMINAL]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} agentq jobs still running after 30 min")
            if pending:
                time.sleep(POLL_SECONDS)
        cpu = tree_cpu_seconds(worker.pid) - cpu_before
        doubles_cpu = d.cpu_seconds() - doubles_before
        rss = max(proc_rss_mib(pid) for pid in members)
        work = work_per_job(before, d.counters(), jobs)
        records = [j for j in client.store.load_many(job_ids) if j is not None]
    finally:
        worker.stop(signal.SIGTERM, timeout=30)
    succeeded = [j for j in records if j.status == "succeeded"]
    latencies = [j.finished_at - j.created_at for j in records if j.finished_at]
    # Attempts that did not end the job (a transient failure retried) cost work too: name them.
    retried = Counter(
        a.error_code or a.outcome for j in records for a in j.history if a.outcome != "succeeded"
    )
    start = min(j.created_at for j in records)
    end = max(j.finished_at or 0.0 for j in records)
    return {
        "jobs": jobs,
        "succeeded": len(succeeded),
        "concurrency": concurrency * processes,
        "processes": processes,
        "submit_seconds": submitted - start,
        "seconds": end - start,
        "throughput": jobs / (end - start),
        **latency_figures(latencies),
        "cpu_per_job": cpu / jobs,
        "doubles_cpu_per_job": doubles_cpu / jobs,
        "peak_rss_mib": rss,
        "peak_running_seen": peak_running,
        "attempts": sum(j.attempts for j in records),
        "failed_attempts_by_code": dict(retried),
        "mcp_requests_per_job": work.get("mcp requests", 0.0),
        "work_per_job": work,
        "work_as_expected": shape_ok(work),
    }
