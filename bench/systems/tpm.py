"""Full speed under a provider's tokens-per-minute limit: agentq with and without its model
budget, and the naive baseline, against the model double limited to a TPM.

With a real model what bounds a batch is the provider's limits, not CPU. The double is limited
to a TPM that allows about ``jobs_per_s`` jobs a second (the tokens one job uses are measured
first, in a warm-up against the unlimited double), its bucket starting empty as a key another
client has just spent, right before each system's first job (so nobody starts on a minute's
burst that a busy key would not have). Each system is read the same way:

- goodput: the tokens of the jobs that succeeded (tokens per job, from the warm-up, times the
  jobs that succeeded) per minute, from the first job sent to the last one ended; and that as a
  share of the TPM limit;
- the share of model requests the double refused with a 429 (``rate_limited`` in its stats);
- the jobs that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.measure import Doubles
from bench.systems.agentq import run_agentq
from bench.systems.baseline import run_baseline


def model_stats(d: Doubles) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{d.model.base_url}/_double/stats", timeout=10).json()
    return stats


def configure_model(d: Doubles, **knobs: Any) -> None:
    httpx.post(f"{d.model.base_url}/_double/config", json=knobs, timeout=10).raise_for_status()


def _served(stats: dict[str, Any]) -> tuple[int, int, int]:
    """Model requests, 429s for a rate limit, and tokens served so far."""
    return (
        int(stats["requests"]),
        int(stats.get("rate_limited", 0)),
        int(stats["input_tokens"]) + int(stats["output_tokens"]),
    )


def run_tpm(
    d: Doubles,
    workdir: Path,
    db: int,
    jobs: int,
    baseline_jobs: int,
    concurrency: int,
    processes: int,
    jobs_per_s: float = 10.0,
    warmup_jobs: int = 20,
) -> dict[str, Any]:
    """The scenario: a warm-up to measure a job's tokens, then agentq with the budget set to the
    TPM, agentq without it, and the baseline, each against the limited double. Redis databases
    ``db`` to ``db + 2`` are used."""
    before = _served(model_stats(d))
    run_agentq(d, workdir, db, warmup_jobs, min(concurrency, warmup_jobs), processes=1)
    after = _served(model_stats(d))
    tokens_per_job = (after[2] - before[2]) / warmup_jobs
    tpm = round(tokens_per_job * jobs_per_s * 60)

    def limited() -> None:
        configure_model(d, tpm=tpm, limits_start_empty=True)

    systems: dict[str, dict[str, Any]] = {}
    try:
        budget = {"AGENTQ_MODEL_TOKENS_PER_MINUTE": str(tpm)}
        runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (
                "agentq, budget",
                lambda: run_agentq(
                    d, workdir, db + 1, jobs, concurrency, processes, budget, limited
                ),
            ),
            (
                "agentq, no budget",
                lambda: run_agentq(d, workdir, db + 2, jobs, concurrency, processes, None, limited),
            ),
            ("baseline", lambda: run_baseline(d, workdir, db + 3, baseline_jobs, limited)),
        ]
        for name, run in runs:
            start = _served(model_stats(d))
            result = run()
            end = _served(model_stats(d))
            requests, refused = end[0] - start[0], end[1] - start[1]
            succeeded = int(result["succeeded"])
            goodput = tokens_per_job * succeeded / result["seconds"] * 60
            systems[name] = {
                "jobs": result["jobs"],
                "succeeded": succeeded,
                "failed": result["jobs"] - succeeded,
                "processes": result["processes"],
                "concurrency": result["concurrency"],
                "seconds": result["seconds"],
                "jobs_per_s": succeeded / result["seconds"],
                "goodput_tokens_per_minute": goodput,
                "goodput_ratio": goodput / tpm,
                "model_requests": requests,
                "rate_limited": refused,
                "share_429": refused / requests if requests else 0.0,
                "served_tokens_per_minute": (end[2] - start[2]) / result["seconds"] * 60,
                "p50": result["p50"],
                "p95": result["p95"],
                "failed_attempts_by_code": result.get("failed_attempts_by_code", {}),
            }
    finally:
        configure_model(d, tpm=0, limits_start_empty=False)
    return {
        "tokens_per_job": tokens_per_job,
        "tpm_limit": tpm,
        "jobs_per_s_allowed": jobs_per_s,
        "warmup_jobs": warmup_jobs,
        "systems": systems,
    }
