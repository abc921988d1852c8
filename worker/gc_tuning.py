"""How a worker's garbage collector runs: seldom, and never over what was loaded at start.

A worker holds hundreds of thousands of long-lived objects (Celery, kombu, pydantic's schemas,
openai's and the Agents SDK's types) and makes many short-lived ones per job (messages, tool
results, trace steps), few of them in reference cycles. With CPython's defaults the young
generation is collected every 700 allocations (2,000 on 3.13), and the older ones, which hold
every long-lived object, every tenth and hundredth time: the more jobs in flight, the more often
the start-up state is walked again. Measured in the benchmark's one-process run, side by side:
50 jobs in flight, 19.7 ms of CPU per job with the defaults and 16.6 ms tuned (mean of four runs
each); 200 in flight, 21.9 and 17.5 ms.

``settle`` runs once, when the worker is ready (``worker.app``): a full collection, then what is
left is frozen (moved out of the collector's sight: it lives as long as the process), and the
young generation's threshold raised. Cycles made by jobs are still collected.
"""

from __future__ import annotations

import gc

# Allocations (net) between collections of the youngest generation, and collections of each
# generation between collections of the next (CPython's defaults: 700, 10, 10; 2000 on 3.13).
THRESHOLDS = (20_000, 20, 50)


def settle() -> None:
    """Freeze what the worker loaded at start and collect less often from now on."""
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
