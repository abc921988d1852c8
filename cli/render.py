"""How jobs and traces look in a terminal (``--json`` output is the models' own JSON).

Answers, questions, error messages, tool arguments, names and ids are data: they reach the
terminal only through ``data`` (a rich ``Text``, never a markup string, without control
characters), so ``[/]`` or ``[link=...]`` in an answer is shown as it is, and an escape sequence
in a tool's output never reaches the terminal.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from agentq.answers import Item, item_columns
from agentq.jobs import Job, JobStatus
from agentq.prices import usd
from agentq.text import printable, utc_time
from agentq.traces import AttemptTrace, Step, Trace

STATUS_STYLE = {
    JobStatus.QUEUED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}


def data(value: object, style: str = "") -> Text:
    """Model, tool or user text as the terminal shows it: itself, and nothing it could act on."""
    return Text(printable("" if value is None else str(value)), style=style)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def status_table(job: Job) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", data(job.id))
    table.add_row("status", data(job.status, style=STATUS_STYLE[job.status]))
    table.add_row("attempts", str(job.attempts))
    table.add_row("created", utc_time(job.created_at))
    table.add_row("started", utc_time(job.started_at))
    table.add_row("finished", utc_time(job.finished_at))
    table.add_row("queued for", _seconds(job.queued_seconds))
    table.add_row("ran for", _seconds(job.run_seconds))
    table.add_row("cost", data(cost_text(job)))
    if job.error is not None:
        table.add_row("error", data(f"{job.error.code}: {job.error.message}", style="red"))
    return table


def result_view(job: Job) -> Group:
    parts: list[Any] = [status_table(job)]
    usage = job.usage
    if usage is not None:
        parts.append(
            Text(
                f"usage: {usage.requests} model requests, {usage.input_tokens} input "
                f"({usage.cached_tokens} cached) + {usage.output_tokens} output "
                f"({usage.reasoning_tokens} reasoning) tokens",
                style="dim",
            )
        )
    items = job.items
    if items is not None and job.item_key is not None:
        parts += [Text(""), items_view(items, job.item_key)]
    elif job.answer is not None:
        parts.append(Text(""))
        parts.append(data(job.answer))
    return Group(*parts)


def cost_text(job: Job) -> str:
    """What a job cost, with the model and tier that answered: ``$0.0012 (gpt-5-mini, flex)``;
    "cost unknown" when the price table has no price for them."""
    if job.usage is None:
        return usd(0.0)
    said = ", ".join(part for part in (job.model, job.served_tier) if part)
    return usd(job.cost_usd) + (f" ({said})" if said else "")


def items_view(items: list[Item], item_key: str) -> Table | Text:
    """An items answer as a table: the key first, then each field any item has."""
    if not items:
        return Text("(no items)", style="dim")
    table = Table(title=f"{len(items)} item{'s' if len(items) != 1 else ''}")
    columns = item_columns(items, item_key)
    for column in columns:
        table.add_column(data(column))
    for item in items:
        table.add_row(*(data("" if item.get(c) is None else item.get(c)) for c in columns))
    return table


def _step_detail(step: Step) -> str:
    if step.kind == "prompt":
        return f"{step.name} from {step.server}" + (" (cached)" if step.result_excerpt else "")
    if step.kind == "list_tools":
        return f"{len(step.tools or [])} tools from {step.server}"
    if step.kind == "model_call":
        return (step.model or "model") + (f" ({step.service_tier})" if step.service_tier else "")
    if step.kind == "tool_call":
        args = json.dumps(step.arguments, separators=(",", ":"))
        if len(args) > 80:
            args = args[:77] + "..."
        detail = f"{step.tool}({args}) -> {step.result_bytes} bytes"
        if step.is_error:
            detail += f"  ERROR {step.error or ''}".rstrip()
        return detail
    return (step.output or "")[:100].replace("\n", " ")


def _attempt_table(attempt: AttemptTrace) -> Table:
    title = f"attempt {attempt.attempt}: {attempt.outcome}"
    if attempt.error_code:
        title += f" ({attempt.error_code}: {attempt.error_message})"
    table = Table(title=data(title), title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("detail", overflow="fold")
    table.add_column("tokens in/out", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("ms", justify="right")
    for index, step in enumerate(attempt.steps, start=1):
        tokens = cost = ""
        if step.kind == "model_call":
            tokens = f"{step.input_tokens or 0}/{step.output_tokens or 0}"
            if step.cached_tokens:
                tokens += f" ({step.cached_tokens} cached)"
            cost = usd(step.cost_usd, unknown="unknown")
        style = "red" if step.is_error else None
        table.add_row(
            str(index),
            data(step.kind),
            data(_step_detail(step)),
            tokens,
            cost,
            "" if step.duration_ms is None else f"{step.duration_ms:.0f}",
            style=style,
        )
    return table


def trace_view(trace: Trace) -> Group:
    if not trace.attempts:
        return Group(data(f"job {trace.job_id}: no attempt has finished yet"))
    totals = trace.totals
    parts: list[Any] = [_attempt_table(a) for a in trace.attempts]
    parts.append(
        Text(
            f"totals: {totals.model_calls} model calls, {totals.tool_calls} tool calls "
            f"({totals.tool_errors} errors), {totals.input_tokens} input "
            f"({totals.cached_tokens} cached) + {totals.output_tokens} output tokens, "
            f"{usd(totals.cost_usd)}, {totals.duration_ms:.0f} ms",
            style="bold",
        )
    )
    return Group(*parts)


_ANSI = {"removed": "\x1b[31m", "added": "\x1b[32m", "heading": "\x1b[1m"}


def ansi_mark(what: str, text: str) -> str:
    """A diff's colours on a terminal: removed red, added green, headings bold. ``text`` has
    been through ``printable`` (no escape of its own survives): these are the only ones."""
    return f"{_ANSI[what]}{text}\x1b[0m" if what in _ANSI else text
