"""A fast smoke run of the benchmark harness (``make bench`` runs the full one).

It checks that every figure is produced and sane, not that the targets are met: performance on a
shared CI machine is too noisy to assert, and the full run reports the targets itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RATIOS = (
    "throughput_ratio_vs_baseline",
    "throughput_ratio_vs_limit",
    "cpu_per_job_ratio_vs_limit",
)
FIGURES = (*RATIOS, "peak_rss_mib", "enqueue_jobs_per_s", "mcp_requests_per_job")


def test_bench_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    output, plot = tmp_path / "results.json", tmp_path / "plot.png"
    argv = [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)]
    completed = subprocess.run(
        [*argv, "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(output.read_text())
    for key in FIGURES:
        value = results[key]
        assert isinstance(value, float | int) and not isinstance(value, bool), key
        assert value > 0, key
    for system in ("agentq", "limit", "baseline"):
        figures = results[system]
        assert figures["throughput"] > 0 and figures["cpu_per_job"] > 0, system
        assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"], system
        # The comparison is only fair if every system did the same work per job.
        assert figures["work_per_job"]["model requests"] == 2.0, system
        assert figures["work_per_job"]["mcp tools/call"] == 1.0, system
    assert results["agentq"]["succeeded"] == results["agentq"]["jobs"] == 20
    assert set(results["targets"]) == {
        "throughput_ratio_vs_baseline",
        "throughput_ratio_vs_limit",
        "cpu_per_job_ratio_vs_limit",
        "peak_rss_mib",
        "enqueue_jobs_per_s",
    }
    assert all(isinstance(v["met"], bool) for v in results["targets"].values())
    assert {p["system"] for p in results["sweep"]} == {"agentq", "limit"}
    assert results["settings"]["smoke"] is True and results["timestamp"].endswith("Z")
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "throughput_ratio_vs_limit" in completed.stdout
