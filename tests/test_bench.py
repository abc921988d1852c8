"""A fast smoke run of the benchmark harness (``make bench`` runs the full one).

It checks that every phase runs and every figure is written, not the figures' values: one
worker process (no supervisor to start; ``tests/test_supervisor.py`` covers that) and short
latencies on the doubles keep it quick, and the same on every machine whatever its cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    output, plot = tmp_path / "results.json", tmp_path / "plot.png"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--processes",
            "1",
            "--model-latency-ms",
            "50",
            "--mcp-latency-ms",
            "5",
            "--output",
            str(output),
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(output.read_text())
    for key in (
        "throughput_ratio_vs_baseline",
        "throughput_ratio_vs_limit",
        "cpu_per_job_ratio_vs_limit",
        "peak_rss_mib",
        "enqueue_jobs_per_s",
        "mcp_requests_per_job",
    ):
        assert isinstance(results[key], float | int) and results[key] > 0, key
    assert results["agentq"]["succeeded"] == results["agentq"]["jobs"] == 20
    # Every job sends the same prefix: from the second job on it is served from the cache.
    assert 0 < results["cached_input_share"]["agentq"] < 1
    assert "cached" in completed.stdout
    assert set(results["targets"]) >= {"throughput_ratio_vs_baseline", "peak_rss_mib"}
    durable = {row["setup"]: row for row in results["enqueue"]["durable"]}
    assert durable["off, everysec"]["plan"] == "off"
    assert durable["on, appendfsync always"]["plan"] == "always"
    for row in durable.values():
        assert "skipped" in row or row["batch_jobs_per_s"] > 0, row
    assert "durable writes" in completed.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "throughput_ratio_vs_limit" in completed.stdout
    # The TPM scenario ran its three systems against the limited double.
    tpm = results["tpm"]
    assert tpm["tpm_limit"] > 0 and tpm["tokens_per_job"] > 0
    assert set(tpm["systems"]) == {"agentq, budget", "agentq, no budget", "baseline"}
    for row in tpm["systems"].values():
        assert row["model_requests"] > 0 and 0 <= row["share_429"] <= 1, row
    assert set(results["targets"]) >= {"tpm_goodput_ratio", "tpm_429_share", "tpm_failed_jobs"}
    assert tpm["systems"]["agentq, budget"]["failed"] == 0
    assert "under a TPM limit" in completed.stdout
