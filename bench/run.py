"""``make bench``: agentq's worker against a naive Celery worker and the SDK's own limit.

Everything runs here, side by side in one run, on the same doubles with injected latency (200 ms
per model call, 20 ms per MCP request): a private Redis, the MCP double, the model double, then

1. **agentq**: one ``agentq worker`` process with N jobs in flight, fed one batch;
2. **baseline**: a plain Celery worker (prefork, concurrency 2, ``asyncio.run`` per task, fresh
   clients per task), as a user would first write it;
3. **limit**: the same agent runs with no queue at all, ``asyncio.gather`` in one process with
   the same number in flight;

plus the enqueue rate of a 10,000-question batch and a sweep over concurrency for the plot.
Figures are printed and written to ``bench/results.json``; the plot goes to ``bench/plot.png``.
Ratios matter more than absolute numbers: these machines are noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentq.logs import configure_logging
from agentq.sealing import generate_key
from agentq.settings import Settings
from doubles.processes import (
    Service,
    free_port,
    http_ok,
    python_module,
    spawn,
    start_redis,
    start_worker,
    wait_until,
)
from producer.client import Client

TOKEN = "ihtoken-bench-5e4d3c2b1a"  # noqa: S105 - the doubles' test token
OTHER_TOKEN = "ihtoken-bench-other-9f8e7d"  # noqa: S105 - a second tenant
HERE = Path(__file__).resolve().parent
TARGETS = {
    "throughput_ratio_vs_baseline": (">=", 10.0),
    "throughput_ratio_vs_limit": (">=", 0.75),
    "cpu_per_job_ratio_vs_limit": ("<=", 1.3),
    "peak_rss_mib": ("<=", 400.0),
    "enqueue_jobs_per_s": (">=", 2000.0),
}


@dataclass
class Doubles:
    redis: Service
    mcp: Service
    model: Service
    redis_url: str

    def db(self, number: int) -> str:
        return self.redis_url.rsplit("/", 1)[0] + f"/{number}"

    @property
    def mcp_url(self) -> str:
        return f"{self.mcp.base_url}/mcp"

    @property
    def model_url(self) -> str:
        return f"{self.model.base_url}/v1"

    def mcp_requests(self) -> int:
        stats = httpx.get(f"{self.mcp.base_url}/_double/stats", timeout=10).json()
        return int(stats["total_requests"])


@contextmanager
def doubles(workdir: Path, mcp_latency_ms: float, model_latency_ms: float) -> Iterator[Doubles]:
    redis = start_redis(workdir)
    mcp_port, model_port = free_port(), free_port()
    mcp = spawn(
        f"mcp-{mcp_port}",
        python_module(
            "doubles.mcp_server", "--port", str(mcp_port), "--token", TOKEN,
            "--token", OTHER_TOKEN,
            "--latency-ms", str(mcp_latency_ms),
        ),
        mcp_port,
        workdir,
        ready=http_ok(f"http://127.0.0.1:{mcp_port}/health"),
    )  # fmt: skip
    model = spawn(
        f"model-{model_port}",
        python_module(
            "doubles.model_server", "--port", str(model_port), "--latency-ms", str(model_latency_ms)
        ),
        model_port,
        workdir,
        ready=http_ok(f"http://127.0.0.1:{model_port}/health"),
    )
    try:
        yield Doubles(redis, mcp, model, redis.extra["url"])
    finally:
        for service in (model, mcp, redis):
            service.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def agentq_env(d: Doubles, redis_url: str, concurrency: int) -> dict[str, str]:
    return {
        "AGENTQ_REDIS_URL": redis_url,
        "AGENTQ_SECRET_KEY": generate_key(),
        "AGENTQ_MCP_URL": d.mcp_url,
        "AGENTQ_MODEL": "demo-model",
        "AGENTQ_MODEL_API": "chat_completions",
        "AGENTQ_WORKER_CONCURRENCY": str(concurrency),
        "AGENTQ_TENANT_MAX_INFLIGHT": "100000",
        "AGENTQ_MODEL_MAX_CONCURRENCY": "0",
        "AGENTQ_MCP_MAX_REQUESTS_PER_SECOND": "0",
        "AGENTQ_LOG_LEVEL": "WARNING",
        "AGENTQ_LOG_FORMAT": "json",
        "OPENAI_BASE_URL": d.model_url,
        "OPENAI_API_KEY": "bench-no-key",
    }


def client_for(env: dict[str, str]) -> Client:
    values: dict[str, Any] = {
        k.removeprefix("AGENTQ_").lower(): v for k, v in env.items() if k.startswith("AGENTQ_")
    }
    return Client(Settings(**values))


def run_agentq(d: Doubles, workdir: Path, db: int, jobs: int, concurrency: int) -> dict[str, Any]:
    """N jobs through one real agentq worker process, fed as one batch."""
    env = agentq_env(d, d.db(db), concurrency)
    worker = start_worker(env, workdir, d.db(db))
    try:
        client = client_for(env)
        questions = [f"Which devices are in site {i}?" for i in range(jobs)]
        mcp_before = d.mcp_requests()
        cpu_before = proc_cpu_seconds(worker.pid)
        batch_id = client.submit_batch(questions, TOKEN, max_inflight=concurrency)

        def ended() -> bool:
            batch = client.batches.load(batch_id)
            return batch is not None and batch.ended >= batch.total

        wait_until(ended, 1800, interval=0.2, what="the benchmark batch")
        cpu = proc_cpu_seconds(worker.pid) - cpu_before
        rss = proc_peak_rss_mib(worker.pid)
        mcp_requests = d.mcp_requests() - mcp_before
        job_ids = [i for chunk in client.batches.job_ids(batch_id) for i in chunk]
        records = [j for j in client.store.load_many(job_ids) if j is not None]
    finally:
        worker.stop(signal.SIGTERM, timeout=30)
    succeeded = [j for j in records if j.status == "succeeded"]
    latencies = [j.finished_at - j.created_at for j in records if j.finished_at]
    start = min(j.created_at for j in records)
    end = max(j.finished_at or 0.0 for j in records)
    return {
        "jobs": jobs,
        "succeeded": len(succeeded),
        "concurrency": concurrency,
        "seconds": end - start,
        "throughput": jobs / (end - start),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "cpu_per_job": cpu / jobs,
        "peak_rss_mib": rss,
        "mcp_requests_per_job": mcp_requests / jobs,
    }


def run_limit(d: Doubles, jobs: int, concurrency: int) -> dict[str, Any]:
    """The same agent runs in one process with no queue (``bench.limit``)."""
    completed = subprocess.run(
        python_module(
            "bench.limit", "--jobs", str(jobs), "--concurrency", str(concurrency),
            "--mcp-url", d.mcp_url, "--model-url", d.model_url, "--token", TOKEN,
        ),
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run_baseline(d: Doubles, workdir: Path, db: int, jobs: int) -> dict[str, Any]:
    """A naive Celery worker: prefork, concurrency 2, asyncio.run and fresh clients per task."""
    url = d.db(db)
    env = {**os.environ, "BENCH_REDIS_URL": url}
    log = workdir / "baseline-worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "bench.baseline", "worker",
                "--pool=prefork", "--concurrency=2", "--loglevel=WARNING",
                "--without-gossip", "--without-mingle", "-Q", "bench-baseline",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:
        os.environ["BENCH_REDIS_URL"] = url
        from bench.baseline import app, naive_job

        app.conf.broker_url = app.conf.result_backend = url
        warm = naive_job.delay("warm up", TOKEN, d.mcp_url, d.model_url)
        warm.get(timeout=120)  # the pool is up and imported
        started = time.time()
        sent = [
            (
                time.time(),
                naive_job.delay(f"Which devices in site {i}?", TOKEN, d.mcp_url, d.model_url),
            )
            for i in range(jobs)
        ]
        finished = [(t, float(r.get(timeout=1800))) for t, r in sent]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    latencies = [f - t for t, f in finished]
    end = max(f for _, f in finished)
    return {
        "jobs": jobs,
        "concurrency": 2,
        "seconds": end - started,
        "throughput": jobs / (end - started),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
    }


def measure_enqueue(d: Doubles, db: int, questions: int) -> dict[str, Any]:
    """A batch of ``questions`` submitted with no worker running: how fast it is accepted."""
    env = agentq_env(d, d.db(db), 1)
    env["AGENTQ_MAX_BATCH_QUESTIONS"] = str(max(questions, 10_000))
    client = client_for(env)
    items = [f"Which interfaces of device {i} are down?" for i in range(questions)]
    started = time.perf_counter()
    client.submit_batch(items, TOKEN)
    seconds = time.perf_counter() - started
    return {"questions": questions, "seconds": seconds, "jobs_per_s": questions / seconds}


def measure_fairness(d: Doubles, workdir: Path, db: int, backlog: int) -> dict[str, Any]:
    """Tenant A's ``backlog``-question batch is running when tenant B asks one question: how
    long B's question waits to start (the default tenant cap, 50 worker slots)."""
    env = {**agentq_env(d, d.db(db), 50), "AGENTQ_TENANT_MAX_INFLIGHT": "50"}
    worker = start_worker(env, workdir, d.db(db))
    try:
        client = client_for(env)
        batch_id = client.submit_batch(
            [f"Audit device {i}" for i in range(backlog)], TOKEN, max_inflight=50
        )
        wait_until(
            lambda: (b := client.batches.load(batch_id)) is not None and b.ended >= 50,
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


def judge(figures: dict[str, float]) -> dict[str, dict[str, Any]]:
    verdicts = {}
    for key, (op, target) in TARGETS.items():
        value = figures[key]
        met = value >= target if op == ">=" else value <= target
        verdicts[key] = {"value": round(value, 3), "target": f"{op} {target}", "met": met}
    return verdicts


def plot(sweep: list[dict[str, Any]], baseline: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, marker in (("agentq", "o"), ("limit", "s")):
        points = sorted((p["concurrency"], p) for p in sweep if p["system"] == system)
        xs = [c for c, _ in points]
        left.plot(xs, [p["throughput"] for _, p in points], marker=marker, label=system)
        right.plot(xs, [p["p95"] for _, p in points], marker=marker, label=system)
    left.scatter([2], [baseline["throughput"]], color="red", zorder=3, label="baseline (prefork 2)")
    right.scatter([2], [baseline["p95"]], color="red", zorder=3, label="baseline (prefork 2)")
    left.set(xscale="log", xlabel="jobs in flight", ylabel="jobs / s", title="Throughput")
    right.set(xscale="log", xlabel="jobs in flight", ylabel="seconds", title="p95 latency")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle("agentq vs naive Celery baseline vs no-queue limit (model 200 ms, MCP 20 ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--baseline-jobs", type=int, default=60)
    parser.add_argument("--sweep", default="10,50,200")
    parser.add_argument("--sweep-jobs", type=int, default=200)
    parser.add_argument("--enqueue", type=int, default=10_000)
    parser.add_argument("--fairness-backlog", type=int, default=2000)
    parser.add_argument("--model-latency-ms", type=float, default=200.0)
    parser.add_argument("--mcp-latency-ms", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--plot", type=Path, default=HERE / "plot.png")
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the harness")
    args = parser.parse_args(argv)
    configure_logging("WARNING", "console")
    if args.smoke:
        args.jobs, args.concurrency, args.baseline_jobs = 20, 10, 4
        args.sweep, args.sweep_jobs, args.enqueue = "5", 10, 500
        args.fairness_backlog = 60
    sweep_levels = [int(c) for c in args.sweep.split(",") if c.strip()]
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="agentq-bench-") as tmp:
        workdir = Path(tmp)
        with doubles(workdir, args.mcp_latency_ms, args.model_latency_ms) as d:
            print(f"agentq: {args.jobs} jobs, {args.concurrency} in flight ...", flush=True)
            agentq = run_agentq(d, workdir, 1, args.jobs, args.concurrency)
            print(f"limit: {args.jobs} jobs, {args.concurrency} in flight ...", flush=True)
            limit = run_limit(d, args.jobs, args.concurrency)
            print(f"baseline: {args.baseline_jobs} jobs, prefork 2 ...", flush=True)
            baseline = run_baseline(d, workdir, 2, args.baseline_jobs)
            print(f"enqueue: a {args.enqueue}-question batch ...", flush=True)
            enqueue = measure_enqueue(d, 3, args.enqueue)
            print(f"fairness: a {args.fairness_backlog}-question batch, then one question ...")
            fairness = measure_fairness(d, workdir, 8, args.fairness_backlog)
            sweep: list[dict[str, Any]] = []
            for position, level in enumerate(sweep_levels):
                print(f"sweep: {level} in flight ...", flush=True)
                point = run_agentq(d, workdir, 4 + position, args.sweep_jobs, level)
                sweep.append({"system": "agentq", **point})
                sweep.append({"system": "limit", **run_limit(d, args.sweep_jobs, level)})
    figures = {
        "throughput_ratio_vs_baseline": agentq["throughput"] / baseline["throughput"],
        "throughput_ratio_vs_limit": agentq["throughput"] / limit["throughput"],
        "cpu_per_job_ratio_vs_limit": agentq["cpu_per_job"] / limit["cpu_per_job"],
        "peak_rss_mib": agentq["peak_rss_mib"],
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
            "concurrency": args.concurrency,
            "baseline_jobs": args.baseline_jobs,
            "model_latency_ms": args.model_latency_ms,
            "mcp_latency_ms": args.mcp_latency_ms,
            "smoke": args.smoke,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "took_seconds": round(time.time() - began, 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    plot(sweep, baseline, args.plot)
    print_table(results)
    print(f"\nwritten: {args.output} and {args.plot}")
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'system':<10}{'jobs':>6}{'in flight':>11}{'jobs/s':>9}{'p50 s':>8}{'p95 s':>8}"
          f"{'p99 s':>8}{'CPU ms/job':>12}")  # fmt: skip
    for name in ("agentq", "limit", "baseline"):
        r = results[name]
        cpu = f"{r['cpu_per_job'] * 1000:.1f}" if "cpu_per_job" in r else "-"
        print(
            f"{name:<10}{r['jobs']:>6}{r['concurrency']:>11}{r['throughput']:>9.2f}"
            f"{r['p50']:>8.2f}{r['p95']:>8.2f}{r['p99']:>8.2f}{cpu:>12}"
        )
    print()
    for key, verdict in results["targets"].items():
        mark = "ok  " if verdict["met"] else "MISS"
        print(f"{mark} {key:<32} {verdict['value']:>10} (target {verdict['target']})")
    print(f"     {'mcp_requests_per_job':<32} {results['mcp_requests_per_job']:>10}")
    fairness = results["fairness"]
    print(
        f"     {'fairness_wait_s':<32} {results['fairness_wait_s']:>10} (another tenant's "
        f"question, with {fairness['backlog_waiting_then']} of {fairness['backlog']} queued)"
    )


if __name__ == "__main__":
    main()
