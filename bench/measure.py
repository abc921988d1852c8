"""The doubles every system runs against, and the readings every system is measured with.

The comparison is only fair if each system meets the same doubles (same latency, same tokens,
same request counters) and is read the same way (CPU and peak RSS from /proc, latencies as
nearest-rank percentiles, the work per job counted on the doubles), so all of that lives here,
once, and the modules in ``bench.systems`` only decide what to start and when to read.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from doubles.processes import Service, free_port, http_ok, python_module, spawn, start_redis

TOKEN = "ihtoken-bench-5e4d3c2b1a"  # noqa: S105 - the doubles' test token
OTHER_TOKEN = "ihtoken-bench-other-9f8e7d"  # noqa: S105 - a second tenant
# The work one job must do with the model double's default policy: two model calls (pick a tool,
# then answer from its output) and one tool call. Anything else means the comparison is unfair.
EXPECTED_MODEL_REQUESTS_PER_JOB = 2.0
EXPECTED_TOOL_CALLS_PER_JOB = 1.0


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

    def cpu_seconds(self) -> float:
        """CPU used so far by the services the jobs talk to (the doubles and Redis): they share
        the machine's cores with the system measured, so they bound its throughput too."""
        return sum(proc_cpu_seconds(s.pid) for s in (self.redis, self.mcp, self.model))

    def counters(self) -> Counter[str]:
        """What the doubles have served so far: model requests and MCP requests by method."""
        mcp = httpx.get(f"{self.mcp.base_url}/_double/stats", timeout=10).json()
        model = httpx.get(f"{self.model.base_url}/_double/stats", timeout=10).json()
        counts: Counter[str] = Counter({f"mcp {m}": n for m, n in mcp["by_method"].items()})
        counts["mcp requests"] = int(mcp["total_requests"])
        counts["model requests"] = int(model["requests"])
        # Input tokens, and of them those the double served from its prefix cache (as a
        # provider does for a repeated prefix of 1,024+ tokens): the cached share.
        counts["model input tokens"] = int(model["input_tokens"])
        counts["model cached tokens"] = int(model.get("cached_tokens", 0))
        return counts


def work_per_job(before: Counter[str], after: Counter[str], jobs: int) -> dict[str, float]:
    """Requests the doubles served between two counter readings, per job."""
    delta = after - before
    return {key: round(delta[key] / jobs, 3) for key in sorted(delta)}


def cached_share(work: dict[str, float]) -> float:
    """The share of input tokens served from the provider's prefix cache (billed at the
    cached-input price)."""
    sent = work.get("model input tokens", 0)
    return round(work.get("model cached tokens", 0) / sent, 3) if sent else 0.0


def shape_ok(work: dict[str, float]) -> bool:
    """Whether the jobs did the work the comparison assumes (2 model calls, 1 tool call)."""
    return (
        abs(work.get("model requests", 0) - EXPECTED_MODEL_REQUESTS_PER_JOB) < 0.01
        and abs(work.get("mcp tools/call", 0) - EXPECTED_TOOL_CALLS_PER_JOB) < 0.01
    )


@contextmanager
def doubles(workdir: Path, mcp_latency_ms: float, model_latency_ms: float) -> Iterator[Doubles]:
    redis = start_redis(workdir)
    mcp_port, model_port = free_port(), free_port()
    mcp = spawn(
        f"mcp-{mcp_port}",
        python_module(
            "doubles.mcp_server", "--port", str(mcp_port), "--token", TOKEN,
            "--token", OTHER_TOKEN, "--read-only",  # as deployed: every system sees 7 tools
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
    """Nearest-rank percentile (no interpolation: every figure is a latency a job really had)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def latency_figures(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
    }


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc: no psutil needed."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pids() -> dict[int, int]:
    """Every living process's parent, from /proc: pid -> parent pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
    return parents


def proc_children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the prefork pool's processes, the supervisor's workers)."""
    return [child for child, parent in parent_pids().items() if parent == pid]


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its living children (a prefork worker does its work in children)."""
    total = 0.0
    for member in (pid, *proc_children(pid)):
        try:
            total += proc_cpu_seconds(member)
        except OSError:
            continue
    return total


def proc_rss_mib(pid: int) -> float:
    """Peak resident set of a process since it started (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, all processes), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU of this process and every process it started: the living ones from /proc (children
    of children too), the ended ones from RUSAGE_CHILDREN (they are counted once reaped)."""
    me = os.getpid()
    parents = parent_pids()

    def ours(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    total = 0.0
    for pid in parents:
        if ours(pid):
            try:
                total += proc_cpu_seconds(pid)
            except OSError:
                continue
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class Phases:
    """How long each phase of a run took, and the CPU that processes not ours used meanwhile:
    the figures are only comparable when that is near zero (on a shared machine it may not be).
    A phase entered twice (the sweep's points) adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.others_cpu_seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str, what: str) -> Iterator[None]:
        """Announce the phase, then time it and the other processes' CPU while it runs."""
        print(f"{name}: {what} ...", flush=True)
        started, busy, own = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 1)
        other = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own)
        self.others_cpu_seconds[name] = round(
            self.others_cpu_seconds.get(name, 0.0) + max(0.0, other), 1
        )
