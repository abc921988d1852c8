"""``worker.gc_tuning.settle``: what a ready worker does to its garbage collector."""

from __future__ import annotations

import json
import subprocess
import sys

from worker.gc_tuning import THRESHOLDS


def test_settle_freezes_the_start_and_collects_less_often() -> None:
    # In a process of its own: freezing is for the life of the process.
    script = (
        "import gc, json, worker.tasks\n"
        "from worker.gc_tuning import settle\n"
        "before = gc.get_threshold()\n"
        "settle()\n"
        "class Cycle: pass\n"
        "a = Cycle(); a.me = a; del a\n"  # a job's cycle is still collected
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count(), gc.collect()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, frozen, collected = json.loads(out.stdout.strip().splitlines()[-1])
    assert before != after == list(THRESHOLDS)
    assert frozen > 100_000  # the worker's modules and their objects, out of the collector's way
    assert collected >= 1
