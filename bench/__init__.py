"""The benchmark (``make bench``): agentq's worker against a naive Celery worker and the limit."""

# The baseline task's name and queue, here so that the orchestrator can send it tasks by name
# without importing ``bench.baseline`` (which imports the Agents SDK: ~3 s it need not spend).
BASELINE_TASK = "bench.naive_job"
BASELINE_QUEUE = "bench-baseline"
