"""``make bench``: agentq's worker against a naive Celery worker, the SDK handler and the limit.

Everything runs here, side by side in one run, on the same doubles with injected latency (200 ms
per model call, 20 ms per MCP request): a private Redis, the MCP double, the model double, then

1. **agentq**: ``agentq worker --processes P`` (default: one per core) with C jobs in flight in
   each process, each job submitted with ``Client.submit`` (the ordinary path, not a batch);
2. **baseline**: a plain Celery worker (prefork, concurrency 2, ``asyncio.run`` per task, fresh
   clients per task), as a user would first write it;
3. **limit**: the same agent runs with no queue at all, ``asyncio.gather`` in the same number of
   processes with the same number in flight, with the same per-process caches (the bare SDK at
   its best: what agentq must beat);
4. **seed**: the multi-tenant handler the Infrahub MCP server's Agents SDK page shows (a new MCP
   server object and a prompt fetch per question, SDK defaults otherwise), run like the limit:
   what a user writes without agentq;

plus the enqueue rate of a 10,000-question batch (and with durable writes on and off), how
long another tenant waits behind a big batch, and a sweep over jobs in flight in one process
(agentq and the limit) for the plot and for the memory figure (one process with 200 in
flight), and the TPM scenario: agentq with and without its model budget, and the baseline,
against the model double limited to a tokens-per-minute limit (``bench.systems.tpm``). Every
system's work per job is counted on the doubles (model requests, MCP requests by method), so a
system that skipped work would show.
Figures are printed and written to ``bench/results.json``; the plot goes to ``bench/plot.png``.
Ratios matter more than absolute numbers: these machines are noisy, so compare within one run.

This module parses the arguments and runs the phases in order; how each system is run is in
``bench.systems``, the doubles and readings in ``bench.measure``, the results in ``bench.report``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from agentq.logs import configure_logging
from bench import report
from bench.measure import Phases, doubles
from bench.systems.agentq import run_agentq
from bench.systems.baseline import run_baseline
from bench.systems.batches import measure_durable_enqueue, measure_enqueue, measure_fairness
from bench.systems.limit import run_limit
from bench.systems.tpm import run_tpm

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
    parser.add_argument("--tpm-jobs", type=int, default=1000, help="agentq jobs under the TPM")
    parser.add_argument("--tpm-baseline-jobs", type=int, default=100)
    parser.add_argument(
        "--tpm-jobs-per-s", type=float, default=10.0, help="jobs a second the TPM limit allows"
    )
    parser.add_argument("--skip-tpm", action="store_true", help="no TPM scenario")
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the harness")
    args = parser.parse_args(argv)
    if args.smoke:
        # No sweep: the memory figure comes from the main run (the harness is what is tested).
        args.jobs, args.concurrency, args.baseline_jobs = 20, 5, 4
        args.sweep, args.sweep_jobs, args.enqueue = "", 20, 500
        args.rss_concurrency = 0
        args.fairness_backlog = 30
        # A faster limit and a shorter warm-up: the scenario's harness, not its figures.
        args.tpm_jobs, args.tpm_baseline_jobs, args.tpm_jobs_per_s = 20, 4, 40.0
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
    phases = Phases()
    with tempfile.TemporaryDirectory(prefix="agentq-bench-") as tmp:
        workdir = Path(tmp)
        with doubles(workdir, args.mcp_latency_ms, args.model_latency_ms) as d:
            in_flight = f"{args.processes} x {args.concurrency} in flight"
            with phases.timed("agentq", f"{args.jobs} jobs, {in_flight}"):
                agentq = run_agentq(
                    d, workdir, 1, args.jobs, args.concurrency, processes=args.processes
                )
            with phases.timed("limit", f"{args.jobs} jobs, {in_flight}"):
                limit = run_limit(d, args.jobs, args.concurrency, processes=args.processes)
            with phases.timed("seed", f"{args.jobs} jobs, {in_flight}"):
                seed = run_limit(
                    d, args.jobs, args.concurrency, processes=args.processes, system="seed"
                )
            with phases.timed("baseline", f"{args.baseline_jobs} jobs, prefork 2"):
                baseline = run_baseline(d, workdir, 2, args.baseline_jobs)
            with phases.timed("enqueue", f"a {args.enqueue}-question batch"):
                enqueue = measure_enqueue(d, 3, args.enqueue)
            with phases.timed("durable", f"a {args.enqueue}-question batch, durable on and off"):
                enqueue["durable"] = measure_durable_enqueue(
                    d, workdir, args.enqueue, singles=3 if args.smoke else 20
                )
            backlog = args.fairness_backlog
            with phases.timed("fairness", f"a {backlog}-question batch, then one more"):
                fairness = measure_fairness(d, workdir, 8, backlog)
            sweep: list[dict[str, Any]] = []
            for position, level in enumerate(sweep_levels):
                what = f"{args.sweep_jobs} jobs, 1 process x {level} in flight"
                with phases.timed("sweep", what):
                    point = run_agentq(d, workdir, 4 + position, args.sweep_jobs, level)
                    sweep.append({"system": "agentq", **point})
                    sweep.append({"system": "limit", **run_limit(d, args.sweep_jobs, level)})
            tpm = None
            if not args.skip_tpm:
                what = f"{args.tpm_jobs} jobs under a TPM of ~{args.tpm_jobs_per_s:g} jobs/s"
                with phases.timed("tpm", what):
                    tpm = run_tpm(
                        d, workdir, 10, args.tpm_jobs, args.tpm_baseline_jobs,
                        args.concurrency, args.processes, args.tpm_jobs_per_s,
                        warmup_jobs=5 if args.smoke else 20,
                    )  # fmt: skip
    settings = {
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
        "tpm_jobs": args.tpm_jobs,
        "tpm_baseline_jobs": args.tpm_baseline_jobs,
    }
    results = report.results(
        report.Runs(agentq, limit, baseline, enqueue, fairness, sweep, seed, tpm),
        settings,
        load_at_start=load_at_start,
        took_seconds=round(time.time() - began, 1),
        phases=phases,
    )
    report.publish(results, args.output, args.plot)
    return results


if __name__ == "__main__":
    main()
