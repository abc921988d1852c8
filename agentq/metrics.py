"""Prometheus metrics, shared by workers (``AGENTQ_WORKER_METRICS_PORT``) and the HTTP API.

Counters and histograms are per process, as Prometheus expects: each worker counts what it ran,
and the scrape sums them. What only Redis knows (queue depth, running jobs, live workers) is read
at scrape time by ``RedisCollector``, registered by the API only, so it is reported once. Labels
never hold a token, a question or a user: only statuses, error codes and tool names.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agentq.dispatch import LANES_KEY, lane_key
from agentq.store import DELAYED_KEY, RUNNING_KEY, SENT_KEY, WORKER_PREFIX
from agentq.traces import AttemptTrace

JOBS_FINISHED = Counter(
    "agentq_jobs_finished_total", "Jobs that ended, by final status.", ["status", "error_code"]
)
JOB_DURATION = Histogram(
    "agentq_job_duration_seconds",
    "From submit to end, for jobs that ended.",
    ["status"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
ATTEMPTS = Counter(
    "agentq_attempts_total",
    "Attempts by outcome (succeeded, retrying, failed, cancelled, requeued) and error code.",
    ["outcome", "error_code"],
)
MODEL_CALLS = Counter("agentq_model_calls_total", "Model calls made by agent runs.")
MODEL_TOKENS = Counter("agentq_model_tokens_total", "Model tokens, by kind.", ["kind"])
TOOL_CALLS = Counter(
    "agentq_tool_calls_total", "MCP tool calls, by tool and outcome.", ["tool", "outcome"]
)
HTTP_REQUESTS = Counter(
    "agentq_http_requests_total", "HTTP API requests.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "agentq_http_request_duration_seconds", "HTTP API request duration.", ["method", "route"]
)


def observe_attempt(attempt: AttemptTrace, outcome: str, error_code: str | None) -> None:
    """Count one attempt and the model and tool calls in its trace."""
    ATTEMPTS.labels(outcome=outcome, error_code=error_code or "").inc()
    for step in attempt.steps:
        if step.kind == "model_call":
            MODEL_CALLS.inc()
            MODEL_TOKENS.labels(kind="input").inc(step.input_tokens or 0)
            MODEL_TOKENS.labels(kind="output").inc(step.output_tokens or 0)
        elif step.kind == "tool_call":
            result = "error" if step.is_error else "ok"
            TOOL_CALLS.labels(tool=step.name or "?", outcome=result).inc()


def observe_finished(status: str, error_code: str | None, seconds: float | None) -> None:
    JOBS_FINISHED.labels(status=status, error_code=error_code or "").inc()
    if seconds is not None:
        JOB_DURATION.labels(status=status).observe(seconds)


class RedisCollector(Collector):
    """Queue depth, running and delayed jobs, and live workers, read from Redis when scraped."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self._redis = client
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            lanes = [str(lane) for lane in self._redis.lrange(LANES_KEY, 0, 999)]
            pipe = self._redis.pipeline(transaction=False)
            for lane in lanes:
                pipe.llen(lane_key(lane))
            pipe.llen(self._queue)
            pipe.zcard(SENT_KEY)
            pipe.zcard(RUNNING_KEY)
            pipe.zcard(DELAYED_KEY)
            *waiting, broker, sent, running, delayed = pipe.execute()
            workers = sum(1 for _ in self._redis.scan_iter(match=WORKER_PREFIX + "*", count=500))
        except redis.RedisError:
            return
        depth = GaugeMetricFamily(
            "agentq_queue_depth", "Jobs waiting, by where they wait.", labels=["stage"]
        )
        depth.add_metric(["lanes"], float(sum(int(w) for w in waiting)))
        depth.add_metric(["broker"], float(broker))
        depth.add_metric(["dispatched"], float(sent))
        depth.add_metric(["retry_delay"], float(delayed))
        yield depth
        yield GaugeMetricFamily("agentq_jobs_running", "Jobs running now.", value=float(running))
        yield GaugeMetricFamily(
            "agentq_workers_alive", "Workers with a live heartbeat.", value=workers
        )
