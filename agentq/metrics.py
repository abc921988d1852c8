"""Prometheus metrics, shared by workers (``AGENTQ_WORKER_METRICS_PORT``) and the HTTP API.

Counters and histograms are per process, as Prometheus expects: each worker counts what it ran,
and the scrape sums them. What only Redis knows (queue depth, running jobs, live workers) is read
at scrape time by ``RedisCollector``, registered by the API only, so it is reported once. Labels
never hold a token, a question or a user: only statuses, error codes and tool names.

Every label value comes from a fixed set (``bounded``), whatever a client, the model or the MCP
server sends: a series, once made, lives as long as the process, so a label fed from outside
(a made-up HTTP method, a hallucinated tool name) would let anyone grow the scrape without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator

import redis
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agentq.dispatch import CAPACITY_KEY, LANES_KEY, lane_key
from agentq.errors import ErrorCode
from agentq.jobs import SERVICE_TIERS, JobStatus
from agentq.prices import served_tier
from agentq.store import DELAYED_KEY, RUNNING_KEY, SENT_KEY, WORKER_PREFIX
from agentq.traces import AttemptTrace, Step

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
COST = Counter(
    "agentq_cost_usd",
    "Dollars of model calls at the price table's prices (agentq.prices), by model and the "
    "service tier that served them; calls the table cannot price are not counted.",
    ["model", "tier"],
)
TOOL_CALLS = Counter(
    "agentq_tool_calls_total", "MCP tool calls, by tool and outcome.", ["tool", "outcome"]
)
HTTP_REQUESTS = Counter(
    "agentq_http_requests_total", "HTTP API requests.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "agentq_http_request_duration_seconds", "HTTP API request duration.", ["method", "route"]
)


OTHER = "other"
HTTP_METHODS = frozenset({"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"})
# The statuses the API answers with on purpose; anything else is counted by its class ("5xx").
HTTP_STATUSES = frozenset({200, 202, 204, 304, 400, 401, 404, 405, 413, 422, 429, 500, 503})
ERROR_CODES = frozenset(str(code) for code in ErrorCode)
JOB_STATUSES = frozenset(str(status) for status in JobStatus)
OUTCOMES = frozenset({"succeeded", "retrying", "failed", "cancelled", "requeued"})
MAX_TOOL_LABELS = 256  # distinct tool names one process labels; later ones count as "other"
MAX_TOOL_NAME = 128
MAX_MODEL_LABELS = 16  # distinct model names one process labels (configured: model, fallbacks)

_model_labels: set[str] = set()
_tool_labels: set[str] = set()
_labels_lock = threading.Lock()


def bounded(value: str | None, allowed: Collection[str], empty: str = "") -> str:
    """``value`` if it is one of ``allowed``; ``empty`` for none; ``other`` for anything else."""
    if not value:
        return empty
    return value if value in allowed else OTHER


def http_labels(method: str, route: str | None, status: int) -> tuple[str, str, str]:
    """Labels for one API request: a known method or ``other``, the matched route template (the
    app's own, so a fixed set) or ``unmatched``, a known status or its class."""
    code = str(status) if status in HTTP_STATUSES else f"{status // 100}xx"
    return bounded(method, HTTP_METHODS, OTHER), route or "unmatched", code


def tool_label(name: str | None, listed: Collection[str]) -> str:
    """A tool call's label: its name if the MCP server listed that tool to this attempt (the
    model may name anything) and this process has not already labelled too many tools."""
    if not name or name not in listed or len(name) > MAX_TOOL_NAME:
        return OTHER
    with _labels_lock:
        if name in _tool_labels:
            return name
        if len(_tool_labels) >= MAX_TOOL_LABELS:
            return OTHER
        _tool_labels.add(name)
    return name


def _listed_tools(steps: Iterable[Step]) -> set[str]:
    return {name for step in steps if step.kind == "list_tools" for name in step.tools or ()}


def observe_attempt(attempt: AttemptTrace, outcome: str, error_code: str | None) -> None:
    """Count one attempt and the model and tool calls in its trace."""
    ATTEMPTS.labels(
        outcome=bounded(outcome, OUTCOMES, OTHER), error_code=bounded(error_code, ERROR_CODES)
    ).inc()
    listed = _listed_tools(attempt.steps)
    for step in attempt.steps:
        if step.kind == "model_call":
            MODEL_CALLS.inc()
            MODEL_TOKENS.labels(kind="input").inc(step.input_tokens or 0)
            MODEL_TOKENS.labels(kind="output").inc(step.output_tokens or 0)
            MODEL_TOKENS.labels(kind="cached_input").inc(step.cached_tokens or 0)
            MODEL_TOKENS.labels(kind="reasoning").inc(step.reasoning_tokens or 0)
            if step.cost_usd:
                tier = bounded(served_tier(step.service_tier), SERVICE_TIERS, OTHER)
                COST.labels(model=model_label(step.model), tier=tier).inc(step.cost_usd)
        elif step.kind == "tool_call":
            result = "error" if step.is_error else "ok"
            TOOL_CALLS.labels(tool=tool_label(step.name, listed), outcome=result).inc()


def model_label(model: str | None) -> str:
    """A model's name as a label: the models a worker is configured with are few, so the first
    ``MAX_MODEL_LABELS`` names seen are kept and any later one counts as ``other``."""
    if not model:
        return OTHER
    name = model[:MAX_TOOL_NAME]
    with _labels_lock:
        if name in _model_labels or len(_model_labels) < MAX_MODEL_LABELS:
            _model_labels.add(name)
            return name
    return OTHER


def observe_finished(status: str, error_code: str | None, seconds: float | None) -> None:
    status = bounded(status, JOB_STATUSES, OTHER)
    JOBS_FINISHED.labels(status=status, error_code=bounded(error_code, ERROR_CODES)).inc()
    if seconds is not None:
        JOB_DURATION.labels(status=status).observe(seconds)


def live_workers(client: redis.Redis) -> int:
    """Workers taking jobs: those in the dispatcher's capacity hash whose heartbeat key still
    exists. Two round trips whatever the keyspace holds (no SCAN); a draining worker has left
    the hash already, and a dead one's heartbeat has expired."""
    names = [str(name) for name in client.hkeys(CAPACITY_KEY)]
    if not names:
        return 0
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(WORKER_PREFIX + name)
    return sum(int(found) for found in pipe.execute())


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
            workers = live_workers(self._redis)
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
