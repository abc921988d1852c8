"""What a benchmark run reports: the results file, the verdict on each target, the table, the plot.

Kept apart from the runs so that how figures are combined, judged and shown can change without
touching how they are measured. The targets are the figures the project promises (README,
Performance); each is met or missed on the run's own numbers, never against an earlier run's.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import Phases, cached_share

TARGETS: dict[str, tuple[str, float]] = {
    "throughput_ratio_vs_baseline": (">=", 10.0),
    "throughput_ratio_vs_limit": (">=", 1.1),
    "cpu_per_job_ratio_vs_limit": ("<=", 0.9),
    # One process at 200 in flight against the same process at 50 (the sweep's points).
    "throughput_ratio_200_vs_50": (">=", 0.95),
    "peak_rss_mib": ("<=", 400.0),
    "enqueue_jobs_per_s": (">=", 2000.0),
    # Under a provider's TPM limit (bench.systems.tpm), agentq with its model budget set.
    "tpm_goodput_ratio": (">=", 0.9),
    "tpm_429_share": ("<=", 0.01),
    "tpm_failed_jobs": ("==", 0),
}
TPM_SYSTEM = "agentq, budget"  # the system the tpm_* targets are judged on


@dataclass
class Runs:
    """What each system's run returned (``bench.systems``), as the results file's sections."""

    agentq: dict[str, Any]
    limit: dict[str, Any]
    baseline: dict[str, Any]
    enqueue: dict[str, Any]
    fairness: dict[str, Any]
    sweep: list[dict[str, Any]]
    seed: dict[str, Any]
    tpm: dict[str, Any] | None = None


def results(
    runs: Runs,
    settings: dict[str, Any],
    *,
    load_at_start: list[float],
    took_seconds: float,
    phases: Phases,
) -> dict[str, Any]:
    """Everything ``bench/results.json`` holds: the headline figures and their verdicts, every
    run's own figures, the settings, notes on how to read them, and the conditions of the run."""
    agentq, limit, baseline = runs.agentq, runs.limit, runs.baseline
    # The memory figure is one process's at the in-flight level asked for: its sweep point, or
    # the main run when there was none (a smoke run).
    memory = next(
        (
            p
            for p in runs.sweep
            if p["system"] == "agentq" and p["concurrency"] == settings["rss_concurrency"]
        ),
        agentq,
    )
    figures = {
        "throughput_ratio_vs_baseline": agentq["throughput"] / baseline["throughput"],
        "throughput_ratio_vs_limit": agentq["throughput"] / limit["throughput"],
        "cpu_per_job_ratio_vs_limit": agentq["cpu_per_job"] / limit["cpu_per_job"],
        "throughput_ratio_200_vs_50": in_flight_ratio(runs.sweep, 200, 50),
        "throughput_ratio_vs_seed": agentq["throughput"] / runs.seed["throughput"],
        "cpu_per_job_ratio_vs_seed": agentq["cpu_per_job"] / runs.seed["cpu_per_job"],
        "peak_rss_mib": memory["peak_rss_mib"],
        "enqueue_jobs_per_s": runs.enqueue["jobs_per_s"],
        "mcp_requests_per_job": agentq["mcp_requests_per_job"],
        "fairness_wait_s": runs.fairness["other_tenant_wait_s"],
    }
    if runs.tpm is not None:
        budgeted = runs.tpm["systems"][TPM_SYSTEM]
        figures["tpm_goodput_ratio"] = budgeted["goodput_ratio"]
        figures["tpm_429_share"] = budgeted["share_429"]
        figures["tpm_failed_jobs"] = budgeted["failed"]
    jobs, processes = settings["jobs"], settings["processes"]
    return {
        **{k: rounded(v) for k, v in figures.items()},
        "targets": judge(figures),
        "agentq": agentq,
        "limit": limit,
        "seed": runs.seed,
        "baseline": baseline,
        "enqueue": runs.enqueue,
        "fairness": runs.fairness,
        "sweep": runs.sweep,
        **({"tpm": runs.tpm} if runs.tpm is not None else {}),
        "settings": settings,
        "notes": [
            f"The baseline ran {settings['baseline_jobs']} jobs (agentq and the limit {jobs}); "
            "its throughput is jobs / time from first send to last finish, after two warm-up "
            "tasks.",
            "The seed is the Infrahub MCP server's documented Agents SDK handler (a new MCP server "
            "object and prompt fetch per question, tool listing every turn, the default "
            "Responses API); tracing is off for the limit and the seed, as nothing may leave "
            "the machine.",
            f"agentq, the limit and the seed each run in {processes} process(es) with "
            f"{settings['concurrency_per_process']} jobs in flight in each; the baseline in two "
            "(prefork -c 2). The doubles and Redis share the same cores.",
            f"peak_rss_mib is one agentq worker process's peak RSS with {memory['concurrency']} "
            f"jobs in flight ({'its sweep point' if memory is not agentq else 'the main run'}).",
            "agentq's CPU is its whole worker processes (Celery, dispatch, Redis writes, traces) "
            "between the first submit and the last end; the limit's is its own processes'.",
            f"Sweep points run {settings['sweep_jobs']} jobs each, all submitted at once, so "
            "their latency includes the wait behind the others; compare points of one job count.",
            *(tpm_notes(runs.tpm) if runs.tpm is not None else []),
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": load_at_start,
        },
        "took_seconds": took_seconds,
        "phase_seconds": phases.seconds,
        "other_processes_cpu_seconds": phases.others_cpu_seconds,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def rounded(value: float) -> float | None:
    """A figure for the results file: None where it was not measured (JSON has no NaN)."""
    return None if math.isnan(value) else round(value, 3)


def in_flight_ratio(sweep: list[dict[str, Any]], high: int, low: int) -> float:
    """agentq's throughput in one process at ``high`` jobs in flight over that at ``low`` (the
    sweep's points); NaN, and so a missed target, when the sweep did not run both."""
    by_level = {p["concurrency"]: p["throughput"] for p in sweep if p["system"] == "agentq"}
    if high not in by_level or low not in by_level:
        return float("nan")
    return float(by_level[high] / by_level[low])


def publish(results: dict[str, Any], output: Path, plot_path: Path) -> None:
    """Write the results file and the plot, print the table, and say whether other processes
    were busy enough meanwhile to make the figures noisy."""
    output.parent.mkdir(parents=True, exist_ok=True)
    results["cached_input_share"] = {
        name: cached_share(results[name]["work_per_job"])
        for name in ("agentq", "limit", "seed", "baseline")
        if name in results
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    plot(results["sweep"], (results["agentq"], results["limit"]), results["baseline"], plot_path)
    print_table(results)
    phases, others = results["phase_seconds"], results["other_processes_cpu_seconds"]
    cores = os.cpu_count() or 1
    busy = {k: v for k, v in others.items() if v > 0.05 * phases.get(k, 0.0) * cores}
    if busy:
        print(f"\nwarning: other processes used CPU during {busy} (CPU seconds): noisy figures")
    print(f"\nwritten: {output} and {plot_path} ({results['took_seconds']:.0f} s)")


def tpm_notes(tpm: dict[str, Any]) -> list[str]:
    systems = tpm["systems"]
    return [
        f"TPM scenario: the model double limited to {tpm['tpm_limit']} tokens a minute "
        f"({tpm['tokens_per_job']:.0f} tokens per job, measured in a {tpm['warmup_jobs']}-job "
        f"warm-up, so about {tpm['jobs_per_s_allowed']:g} jobs/s), its bucket empty at each "
        "system's first job; goodput counts the tokens of the jobs that succeeded; the "
        f"tpm_* targets are {TPM_SYSTEM!r}'s. The baseline ran "
        f"{systems['baseline']['jobs']} jobs (agentq {systems[TPM_SYSTEM]['jobs']}): it is "
        "CPU-bound well below the limit.",
    ]


def judge(figures: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each target's value on this run, the target, and whether it was met (a target whose
    figure this run did not measure is left out)."""
    verdicts = {}
    for key, (op, target) in TARGETS.items():
        if key not in figures:
            continue
        value = figures[key]
        met = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
        # A figure not measured (NaN) meets no target.
        verdicts[key] = {"value": rounded(value), "target": f"{op} {target}", "met": met}
    return verdicts


def plot(
    sweep: list[dict[str, Any]],
    main: tuple[dict[str, Any], dict[str, Any]],
    baseline: dict[str, Any],
    path: Path,
) -> None:
    """Throughput and p95 latency against jobs in flight: one process of agentq and of the
    limit at each sweep level (lines), the main multi-process runs (stars), and the baseline,
    fixed at 2 in flight (prefork, one per core), with a dotted line for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, marker in (("agentq", "o"), ("limit", "s")):
        points = sorted((p["concurrency"], p) for p in sweep if p["system"] == system)
        xs = [c for c, _ in points]
        jobs = sorted({p["jobs"] for _, p in points})
        label = f"{system}, 1 process ({'/'.join(map(str, jobs))} jobs)"
        left.plot(xs, [p["throughput"] for _, p in points], marker=marker, label=label)
        right.plot(xs, [p["p95"] for _, p in points], marker=marker, label=label)
    for system, result, color in (("agentq", main[0], "C0"), ("limit", main[1], "C1")):
        label = f"{system}, {result['processes']} processes ({result['jobs']} jobs)"
        for axis, key in ((left, "throughput"), (right, "p95")):
            axis.scatter(
                [result["concurrency"]], [result[key]], marker="*", s=160, color=color,
                edgecolor="black", zorder=4, label=label,
            )  # fmt: skip
    label = f"baseline (prefork 2, {baseline['jobs']} jobs)"
    for axis, key in ((left, "throughput"), (right, "p95")):
        axis.scatter([2], [baseline[key]], color="red", zorder=3, label=label)
        axis.axhline(baseline[key], color="red", linestyle=":", linewidth=1)
    left.set(xscale="log", xlabel="jobs in flight", ylabel="jobs / s", title="Throughput")
    right.set(
        xscale="log", xlabel="jobs in flight", ylabel="seconds", title="p95 latency (submit to end)"
    )
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle("agentq vs naive Celery baseline vs no-queue limit (model 200 ms, MCP 20 ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict[str, Any]) -> None:
    """The three systems side by side (with each one's work per job, so a system that skipped
    work shows), then each target's verdict and the figures that have no target."""
    header = {"jobs": 6, "procs": 6, "in flight": 11, "jobs/s": 9, "p50 s": 8, "p95 s": 8,
              "p99 s": 8, "CPU ms/job": 12, "doubles ms": 12, "model/job": 11,
              "MCP/job": 9, "cached": 8}  # fmt: skip
    print(f"\n{'system':<10}" + "".join(f"{h:>{w}}" for h, w in header.items()))
    for name in ("agentq", "limit", "seed", "baseline"):
        r = results[name]
        work = r["work_per_job"]
        flag = "" if r["work_as_expected"] else "  (not the expected work!)"
        print(
            f"{name:<10}{r['jobs']:>6}{r['processes']:>6}{r['concurrency']:>11}"
            f"{r['throughput']:>9.2f}"
            f"{r['p50']:>8.2f}{r['p95']:>8.2f}{r['p99']:>8.2f}{r['cpu_per_job'] * 1000:>12.1f}"
            f"{r['doubles_cpu_per_job'] * 1000:>12.1f}"
            f"{work.get('model requests', 0):>11.2f}{work.get('mcp requests', 0):>9.2f}"
            f"{cached_share(work):>8.0%}{flag}"
        )
    if "tpm" in results:
        print_tpm_table(results["tpm"])
    print()
    for key, verdict in results["targets"].items():
        mark = "ok  " if verdict["met"] else "MISS"
        value = "not run" if verdict["value"] is None else verdict["value"]
        print(f"{mark} {key:<32} {value:>10} (target {verdict['target']})")
    agentq = results["agentq"]
    print(f"     {'mcp_requests_per_job':<32} {results['mcp_requests_per_job']:>10}")
    for key in ("throughput_ratio_vs_seed", "cpu_per_job_ratio_vs_seed"):
        print(f"     {key:<32} {results[key]:>10}")
    print(f"     {'agentq peak running seen':<32} {agentq['peak_running_seen']:>10}")
    for row in results["enqueue"].get("durable", []):
        if "skipped" in row:
            print(f"     durable writes {row['setup']:<24} skipped: {row['skipped']}")
            continue
        print(
            f"     durable writes {row['setup']:<24} batch {row['batch_jobs_per_s']:>8.0f} jobs/s"
            f", one submit {row['single_submit_ms']:>6.1f} ms"
        )
    fairness = results["fairness"]
    print(
        f"     {'fairness_wait_s':<32} {results['fairness_wait_s']:>10} (another tenant's "
        f"question, with {fairness['backlog_waiting_then']} of {fairness['backlog']} queued)"
    )


def print_tpm_table(tpm: dict[str, Any]) -> None:
    """The TPM scenario's three systems side by side."""
    print(
        f"\nunder a TPM limit of {tpm['tpm_limit']} ({tpm['tokens_per_job']:.0f} tokens/job, "
        f"about {tpm['jobs_per_s_allowed']:g} jobs/s)"
    )
    header = {"jobs": 6, "failed": 8, "jobs/s": 8, "goodput tok/min": 17, "of TPM": 8,
              "429s": 7, "429 share": 11, "p95 s": 8}  # fmt: skip
    print(f"{'system':<19}" + "".join(f"{h:>{w}}" for h, w in header.items()))
    for name, r in tpm["systems"].items():
        print(
            f"{name:<19}{r['jobs']:>6}{r['failed']:>8}{r['jobs_per_s']:>8.2f}"
            f"{r['goodput_tokens_per_minute']:>17.0f}{r['goodput_ratio']:>8.2f}"
            f"{r['rate_limited']:>7}{r['share_429']:>11.3f}{r['p95']:>8.1f}"
        )
