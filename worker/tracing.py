"""Turning the Agents SDK's spans into agentq's trace steps, without sending them anywhere.

The SDK's default processor uploads traces to OpenAI; ``install_span_collector`` replaces it with
a collector that keeps each job's spans in memory until the job asks for them, so traces never
leave the machine. (``set_tracing_disabled`` would also silence our own processor.)
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

from agents.tracing import (
    FunctionSpanData,
    GenerationSpanData,
    MCPListToolsSpanData,
    ResponseSpanData,
    Span,
    Trace,
    TracingProcessor,
    set_trace_processors,
)

from agentq.logs import scrubbed_excerpt
from agentq.traces import Step


class SpanCollector(TracingProcessor):
    """Keeps the finished spans of the traces it was asked to collect; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[str, list[Span[Any]]] = {}

    def collect(self, trace_id: str) -> None:
        with self._lock:
            self._spans[trace_id] = []

    def pop(self, trace_id: str) -> list[Span[Any]]:
        with self._lock:
            return self._spans.pop(trace_id, [])

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            spans = self._spans.get(span.trace_id)
            if spans is not None:
                spans.append(span)

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        return None

    def on_span_start(self, span: Span[Any]) -> None:
        return None

    def shutdown(self) -> None:
        with self._lock:
            self._spans.clear()

    def force_flush(self) -> None:
        return None


_collector: SpanCollector | None = None
_collector_lock = threading.Lock()


def install_span_collector() -> SpanCollector:
    """The process's collector, installed as the SDK's only trace processor."""
    global _collector
    with _collector_lock:
        if _collector is None:
            _collector = SpanCollector()
            set_trace_processors([_collector])
        return _collector


def steps_from_spans(spans: list[Span[Any]], excerpt_chars: int) -> list[Step]:
    """The model calls, tool listings and tool calls among ``spans``, in the order they began."""
    steps: list[Step] = []
    for span in sorted(spans, key=lambda s: s.started_at or ""):
        step = _step_for(span, excerpt_chars)
        if step is not None:
            started, duration = _timing(span)
            step.started_at = started
            step.duration_ms = duration
            steps.append(step)
    return steps


def _step_for(span: Span[Any], excerpt_chars: int) -> Step | None:
    data = span.span_data
    if isinstance(data, MCPListToolsSpanData):
        return Step(kind="list_tools", server=data.server, tools=list(data.result or []))
    if isinstance(data, GenerationSpanData):
        usage: dict[str, Any] = data.usage or {}
        return Step(
            kind="model_call",
            model=data.model,
            input_tokens=_int(usage.get("input_tokens", usage.get("prompt_tokens"))),
            output_tokens=_int(usage.get("output_tokens", usage.get("completion_tokens"))),
        )
    if isinstance(data, ResponseSpanData):
        response = data.response
        response_usage = getattr(response, "usage", None)
        return Step(
            kind="model_call",
            model=getattr(response, "model", None),
            input_tokens=_int(getattr(response_usage, "input_tokens", None)),
            output_tokens=_int(getattr(response_usage, "output_tokens", None)),
        )
    if isinstance(data, FunctionSpanData):
        output = tool_output_text(data.output)
        error = span.error
        return Step(
            kind="tool_call",
            tool=data.name,
            server=(data.mcp_data or {}).get("server"),
            arguments=_arguments(data.input),
            result_bytes=len(output.encode()),
            result_excerpt=scrubbed_excerpt(output, excerpt_chars),
            is_error=error is not None,
            error=_error_text(error),
        )
    return None


def tool_output_text(output: Any) -> str:
    """The text a tool returned, whether the span holds a str, a content dict or a list of them."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        text = output.get("text")
        return text if isinstance(text, str) else json.dumps(output, default=str)
    if isinstance(output, list):
        return "\n".join(tool_output_text(item) for item in output)
    return str(output)


def _arguments(raw: str | None) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    data = error.get("data") if isinstance(error, dict) else None
    detail = data.get("error") if isinstance(data, dict) else None
    return f"{message}: {detail}" if detail else message


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _timing(span: Span[Any]) -> tuple[float | None, float | None]:
    try:
        started = datetime.fromisoformat(span.started_at) if span.started_at else None
        ended = datetime.fromisoformat(span.ended_at) if span.ended_at else None
    except ValueError:
        return None, None
    if started is None:
        return None, None
    duration = (ended - started).total_seconds() * 1000 if ended else None
    return started.timestamp(), duration
