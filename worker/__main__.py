"""``python -m worker --concurrency N --group PID``: one child of ``agentq worker --processes N``.

The supervisor starts its children this way, not through the ``agentq`` command, so the worker
role never depends on the CLI above it; the parent has already checked the settings and Redis.
"""

from __future__ import annotations

import argparse

from worker import run_worker


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--group", type=int, default=None, help="the supervisor's pid")
    args = parser.parse_args()
    run_worker(args.concurrency, supervisor_pid=args.group)


if __name__ == "__main__":
    main()
