"""The limit and the seed: agent runs with no queue at all, in as many processes as agentq has.

What the Agents SDK itself can do on this machine, the ceiling agentq's throughput and CPU are
compared with. The runs happen in ``python -m bench.limit`` processes (so their CPU and memory
are their own, not the orchestrator's); this module starts them, releases them together once
all have imported the SDK, and merges what each reports. The seed (what the Infrahub MCP
server's Agents SDK page shows for many users) is run the same way, so the two compare.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.measure import TOKEN, Doubles, latency_figures, shape_ok, work_per_job
from doubles.processes import python_module


def run_limit(
    d: Doubles, jobs: int, concurrency: int, processes: int = 1, system: str = "limit"
) -> dict[str, Any]:
    """Agent runs with no queue (``bench.limit``): ``processes`` processes, each with
    ``concurrency`` in flight and its share of the jobs, started together. ``system`` is
    ``limit`` (the same agent as agentq's, same caches) or ``seed`` (the documented handler)."""
    before, doubles_before = d.counters(), d.cpu_seconds()
    shares = [jobs // processes + (1 if i < jobs % processes else 0) for i in range(processes)]
    runs = [
        subprocess.Popen(
            python_module(
                "bench.limit", "--jobs", str(share), "--concurrency", str(concurrency),
                "--mcp-url", d.mcp_url, "--model-url", d.model_url, "--token", TOKEN,
                "--wait-for-go", "--system", system,
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]  # fmt: skip
    for run in runs:  # every process has imported the SDK: start them together
        assert run.stdout is not None
        if run.stdout.readline().strip() != "ready":
            raise RuntimeError(f"bench.limit failed to start:\n{run.communicate()[1][-3000:]}")
    parts: list[dict[str, Any]] = []
    for run in runs:
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    for run in runs:
        stdout, stderr = run.communicate(timeout=1800)
        if run.returncode != 0:
            raise RuntimeError(f"bench.limit failed:\n{stderr[-3000:]}")
        parts.append(json.loads(stdout.strip().splitlines()[-1]))
    started = min(p["started_at"] for p in parts)
    ended = max(max(p["finished_at"]) for p in parts)
    late = max(p["started_at"] for p in parts) - started
    latencies = [f - started for p in parts for f in p["finished_at"]]
    work = work_per_job(before, d.counters(), jobs)
    return {
        "jobs": jobs,
        "concurrency": concurrency * processes,
        "processes": processes,
        "seconds": ended - started,
        "throughput": jobs / (ended - started),
        "start_spread_seconds": late,  # how far apart the processes began (should be ~0)
        **latency_figures(latencies),
        "cpu_per_job": sum(p["cpu_per_job"] * p["jobs"] for p in parts) / jobs,
        "peak_rss_mib": max(p["peak_rss_mib"] for p in parts),
        "doubles_cpu_per_job": (d.cpu_seconds() - doubles_before) / jobs,
        "mcp_requests_per_job": work.get("mcp requests", 0.0),
        "work_per_job": work,
        "work_as_expected": shape_ok(work),
    }
