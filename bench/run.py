"""``make bench``: agentq's worker against a naive Celery worker and the SDK's own limit.

Everything runs here, side by side in one run, on the same doubles with injected latency (200 ms
per model call, 20 ms per MCP request): a private Redis, the MCP double, the model double, then

1. **agentq**: ``agentq worker --processes P`` (default: one per core) with C jobs in flight in
   each process, each job submitted with ``Client.submit`` (the ordinary path, not a batch);
2. **baseline**: a plain Celery worker (prefork, concurrency 2, ``asyncio.run`` per task, fresh
   clients per task), as a user would first write it;
3. **limit**: the same agent runs with no queue at all, ``asyncio.gather`` in the same number of
   processes with the same number in flight;

plus the enqueue rate of a 10,000-question batch, how long another tenant waits behind a big
batch, and a sweep over jobs in flight in one process (agentq and the limit) for the plot and
for the memory figure (one process with 200 in flight). Every system's work per job is counted
on the doubles (model requests, MCP requests by method), so a system that skipped work would
show.
Figures are printed and written to ``bench/results.json``; the plot goes to ``bench/plot.png``.
Ratios matter more than absolute numbers: these machines are noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentq.logs import configure_logging
from bench.measure import busy_cpu_seconds, doubles, own_cpu_seconds
from bench.report import judge, plot, print_table
from bench.systems.agentq import run_agentq
from bench.systems.baseline import run_baseline
from bench.systems.batches import measure_enqueue, measure_fairness
from bench.systems.limit import run_limit

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="agentq and limit jobs")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="agentq worker processes, and limit processes (default: one per core)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="jobs in flight in each process"
    )
    parser.add_argument(
        "--rss-concurrency",
        type=int,
        default=200,
        help="jobs in flight in the one process whose peak RSS is the memory figure",
    )
    parser.add_argument(
        "--baseline-jobs", type=int, default=None, help="baseline jobs (default: min(jobs, 100))"
    )
    parser.add_argument("--sweep", default="10,50,200", help="in-flight levels for the plot")
    parser.add_argument("--sweep-jobs", type=int, default=200, help="jobs per sweep point")
    parser.add_argument("--enqueue", type=int, default=10_000, help="questions in the batch")
    parser.add_argument("--fairness-backlog", type=int, default=2000)
    parser.add_argument("--model-latency-ms", type=float, default=200.0)
    parser.add_argument("--mcp-latency-ms", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--plot", type=Path, default=HERE / "plot.png")
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the harness")
    args = parser.parse_args(argv)
    if args.smoke:
        # No sweep: the memory figure comes from the main run (the harness is what is tested).
        args.jobs, args.concurrency, args.baseline_jobs = 20, 5, 4
        args.sweep, args.sweep_jobs, args.enqueue = "", 20, 500
        args.rss_concurrency = 0
        args.fairness_backlog = 30
    if args.baseline_jobs is None:
        args.baseline_jobs = min(args.jobs, 100)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    configure_logging("WARNING", "console")
    sweep_levels = sorted(
        {int(c) for c in args.sweep.split(",") if c.strip()} | {args.rss_concurrency} - {0}
    )
    began = time.time()
    load_at_start = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    phases: dict[str, float] = {}

    others: dict[str, float] = {}

    @contextmanager
    def phase(name: str, what: str) -> Iterator[None]:
        """Time a phase, and measure the CPU that processes not ours used meanwhile: the
        figures are only comparable when that is near zero (on a shared machine it may not)."""
        print(f"{name}: {what} ...", flush=True)
        started, busy, own = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
        yield
        phases[name] = round(phases.get(name, 0.0) + time.monotonic() - started, 1)
        other = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own)
        others[name] = round(others.get(name, 0.0) + max(0.0, other), 1)

    with tempfile.TemporaryDirectory(prefix="agentq-bench-") as tmp:
        workdir = Path(tmp)
        with doubles(workdir, args.mcp_latency_ms, args.model_latency_ms) as d:
            in_flight = f"{args.processes} x {args.concurrency} in flight"
            with phase("agentq", f"{args.jobs} jobs, {in_flight}"):
                agentq = run_agentq(
                    d, workdir, 1, args.jobs, args.concurrency, processes=args.processes
                )
            with phase("limit", f"{args.jobs} jobs, {in_flight}"):
                limit = run_limit(d, args.jobs, args.concurrency, processes=args.processes)
            with phase("baseline", f"{args.baseline_jobs} jobs, prefork 2"):
                baseline = run_baseline(d, workdir, 2, args.baseline_jobs)
            with phase("enqueue", f"a {args.enqueue}-question batch"):
                enqueue = measure_enqueue(d, 3, args.enqueue)
            with phase("fairness", f"a {args.fairness_backlog}-question batch, then one more"):
                fairness = measure_fairness(d, workdir, 8, args.fairness_backlog)
            sweep: list[dict[str, Any]] = []
            for position, level in enumerate(sweep_levels):
                with phase("sweep", f"{args.sweep_jobs} jobs, 1 process x {level} in flight"):
                    point = run_agentq(d, workdir, 4 + position, args.sweep_jobs, level)
                    sweep.append({"system": "agentq", **point})
                    sweep.append({"system": "limit", **run_limit(d, args.sweep_jobs, level)})
    memory = next(
        (p for p in sweep if p["system"] == "agentq" and p["concurrency"] == args.rss_concurrency),
        agentq,
    )
    figures = {
        "throughput_ratio_vs_baseline": agentq["throughput"] / baseline["throughput"],
        "throughput_ratio_vs_limit": agentq["throughput"] / limit["throughput"],
        "cpu_per_job_ratio_vs_limit": agentq["cpu_per_job"] / limit["cpu_per_job"],
        "peak_rss_mib": memory["peak_rss_mib"],
        "enqueue_jobs_per_s": enqueue["jobs_per_s"],
        "mcp_requests_per_job": agentq["mcp_requests_per_job"],
        "fairness_wait_s": fairness["other_tenant_wait_s"],
    }
    results: dict[str, Any] = {
        **{k: round(v, 3) for k, v in figures.items()},
        "targets": judge(figures),
        "agentq": agentq,
        "limit": limit,
        "baseline": baseline,
        "enqueue": enqueue,
        "fairness": fairness,
        "sweep": sweep,
        "settings": {
            "jobs": args.jobs,
            "processes": args.processes,
            "concurrency_per_process": args.concurrency,
            "rss_concurrency": args.rss_concurrency,
            "baseline_jobs": args.baseline_jobs,
            "sweep": sweep_levels,
            "sweep_jobs": args.sweep_jobs,
            "model_latency_ms": args.model_latency_ms,
            "mcp_latency_ms": args.mcp_latency_ms,
            "smoke": args.smoke,
        },
        "notes": [
            f"The baseline ran {args.baseline_jobs} jobs (agentq and the limit {args.jobs}); its "
            "throughput is jobs / time from first send to last finish, after two warm-up tasks.",
            f"agentq and the limit each run in {args.processes} process(es) with "
            f"{args.concurrency} jobs in flight in each; the baseline in two (prefork -c 2). "
            "The doubles and Redis share the same cores.",
            f"peak_rss_mib is one agentq worker process's peak RSS with {memory['concurrency']} "
            f"jobs in flight ({'its sweep point' if memory is not agentq else 'the main run'}).",
            "agentq's CPU is its whole worker processes (Celery, dispatch, Redis writes, traces) "
            "between the first submit and the last end; the limit's is its own processes'.",
            f"Sweep points run {args.sweep_jobs} jobs each, all submitted at once, so their "
            "latency includes the wait behind the others; compare points of one job count.",
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": load_at_start,
        },
        "took_seconds": round(time.time() - began, 1),
        "phase_seconds": phases,
        "other_processes_cpu_seconds": others,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    plot(sweep, (agentq, limit), baseline, args.plot)
    print_table(results)
    cores = os.cpu_count() or 1
    busy = {k: v for k, v in others.items() if v > 0.05 * phases.get(k, 0.0) * cores}
    if busy:
        print(f"\nwarning: other processes used CPU during {busy} (CPU seconds): noisy figures")
    print(f"\nwritten: {args.output} and {args.plot} ({results['took_seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
