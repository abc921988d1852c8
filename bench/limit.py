"""The limit: the same agent runs with no queue at all, ``asyncio.gather`` in one process.

    python -m bench.limit --jobs 500 --concurrency 200 --mcp-url ... --model-url ... --token ...

Prints one JSON line: the epoch times it started and each job finished (all jobs being
"submitted" at once), this process's CPU seconds per job and its peak RSS. The orchestrator
(``bench.systems.limit``) runs one per worker process that agentq has and derives throughput
and latencies from the times. A separate process, so that its CPU and memory are its own and
not the orchestrator's. With ``--wait-for-go`` it prints ``ready`` once it has imported the SDK
and waits for a line on stdin, so that several of them begin together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

from bench.naive_agent import Shared, make_model, run_once


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run the jobs, at most ``--concurrency`` at once, and measure them."""
    shared = Shared(model=make_model(args.model_url))
    gate = asyncio.Semaphore(args.concurrency)
    if args.wait_for_go:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    started = time.time()

    async def one(i: int) -> float:
        async with gate:
            return await run_once(
                f"Which devices are in site {i}?", args.token, args.mcp_url, args.model_url, shared
            )

    cpu_before = _cpu()
    finished = await asyncio.gather(*(one(i) for i in range(args.jobs)))
    cpu = _cpu() - cpu_before
    return {
        "jobs": args.jobs,
        "started_at": started,
        "finished_at": finished,
        "cpu_per_job": cpu / args.jobs,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--wait-for-go", action="store_true")
    print(json.dumps(asyncio.run(run_all(parser.parse_args()))))


if __name__ == "__main__":
    main()
