"""The benchmark (``make bench``): agentq's worker against a naive Celery worker and the limit.

One module per concern, so that a system can be measured, or a figure shown, differently
without reading the rest:

- ``bench.run``: the orchestrator (``python -m bench.run``): its arguments and the phases in
  order;
- ``bench.systems``: one module per system measured (``agentq``, ``limit``, ``baseline``,
  ``batches`` for agentq's enqueue rate and fairness, and ``tpm`` for the three under a
  provider's tokens-per-minute limit): each starts its system and returns its figures;
- ``bench.measure``: what they share: the doubles, the /proc readings, percentiles, the check
  that every job did the same work, the phase timer;
- ``bench.report``: the targets and verdicts, ``bench/results.json``, the table and the plot;
- ``bench.naive_agent``, ``bench.baseline``, ``bench.limit``: the naive systems' own code, run
  in their own processes (``celery -A bench.baseline worker``, ``python -m bench.limit``).
"""

# The baseline task's name and queue, here so that the orchestrator can send it tasks by name
# without importing ``bench.baseline`` (which imports the Agents SDK: ~3 s it need not spend).
BASELINE_TASK = "bench.naive_job"
BASELINE_QUEUE = "bench-baseline"
