"""The limit (and the seed): agent runs with no queue at all, ``asyncio.gather`` in one process.

    python -m bench.limit --jobs 500 --concurrency 200 --mcp-url ... --model-url ... --token ...
        [--system limit|seed]

``limit`` runs the same agent as an agentq job with the same per-process caches
(``bench.naive_agent.run_once``); ``seed`` runs the Infrahub MCP server's documented handler
(``run_seed``).

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
import os
import resource
import sys
import time
from typing import Any

from bench.naive_agent import Shared, make_model, run_once, run_seed


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run the jobs, at most ``--concurrency`` at once, and measure them."""
    shared = Shared(model=make_model(args.model_url)) if args.system == "limit" else None
    gate = asyncio.Semaphore(args.concurrency)
    if args.wait_for_go:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    started = time.time()

    async def one(i: int) -> float:
        question = f"Which devices are in site {i}?"
        async with gate:
            if shared is None:
                return await run_seed(question, args.token, args.mcp_url)
            return await run_once(question, args.token, args.mcp_url, args.model_url, shared)

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
    parser.add_argument("--system", choices=("limit", "seed"), default="limit")
    args = parser.parse_args()
    if args.system == "seed":
        # The SDK's default model provider reads these, as a user's deployment would set them.
        os.environ["OPENAI_BASE_URL"] = args.model_url
        os.environ["OPENAI_API_KEY"] = "bench-no-key"
    print(json.dumps(asyncio.run(run_all(args))))


if __name__ == "__main__":
    main()
