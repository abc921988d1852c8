"""A batch's report: every question with what became of it, and the totals, in md, json or csv.

The report is built from the job records when the batch ends and kept under its own key, so it
stays readable by batch id after the job records expire; while the batch runs, the same report is
built live from whatever has ended so far. A scheduled run's report also holds what changed since
the report's previous run (``agentq.report_changes``), and opens with it in every format: a
section in markdown, ``changes`` in JSON, a ``change`` column (and a row per removed question) in
CSV. Answers given as items are shown as a table of their own under the markdown table.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from agentq.answers import Item, item_columns, items_text
from agentq.jobs import Job
from agentq.prices import usd
from agentq.report_changes import RunChanges, changes_markdown, row_keys
from agentq.text import code_span, csv_cell, md_text, utc_time
from agentq.traces import add_costs

ReportFormat = Literal["md", "json", "csv"]
FORMATS: tuple[ReportFormat, ...] = ("md", "json", "csv")
CSV_COLUMNS = (
    "index", "change", "question_id", "job_id", "question", "status", "answer", "error_code",
    "error_message", "attempts", "tool_calls", "input_tokens", "cached_tokens", "output_tokens",
    "model", "service_tier", "cost_usd", "duration_seconds", "shared_with",
)  # fmt: skip


class ReportRow(BaseModel):
    index: int
    job_id: str
    question: str
    status: str
    answer: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None  # the model that answered (a fallback's, when one was used)
    service_tier: str | None = None  # the tier that served its last model call
    cost_usd: float | None = 0.0  # over all its attempts; None: cost unknown
    duration_seconds: float | None = None
    # The row whose job answered this one too: identical questions of a batch run once.
    shared_with: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    question_id: str | None = None
    item_key: str | None = None  # set when the answer was asked for as items
    items: list[Item] | None = None

    @classmethod
    def of(cls, index: int, job_id: str, job: Job | None) -> ReportRow:
        if job is None:  # its record expired before the report was written
            return cls(index=index, job_id=job_id, question="", status="expired")
        return cls(
            index=index,
            job_id=job.id,
            question=job.question,
            status=str(job.status),
            answer=job.answer,
            error_code=job.error.code if job.error else None,
            error_message=job.error.message if job.error else None,
            attempts=job.attempts,
            tool_calls=job.tool_calls,
            input_tokens=job.usage.input_tokens if job.usage else 0,
            cached_tokens=job.usage.cached_tokens if job.usage else 0,
            output_tokens=job.usage.output_tokens if job.usage else 0,
            model=job.model if job.usage else None,
            service_tier=job.served_tier,
            cost_usd=job.cost_usd,
            duration_seconds=job.run_seconds,
            metadata=job.metadata,
            question_id=job.question_id,
            item_key=job.item_key,
            items=job.items,
        )


class ReportTotals(BaseModel):
    tool_calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0
    run_seconds: float = 0.0
    cost_usd: float | None = 0.0  # None: some question's cost is unknown
    budget_exceeded: int = 0  # questions not run: the budget was spent


class BatchReport(BaseModel):
    batch_id: str
    name: str | None = None
    schedule: str | None = None
    status: str
    created_at: float
    finished_at: float | None = None
    total: int
    counts: dict[str, int]
    final: bool = False  # written when the batch ended (else a live view)
    rows: list[ReportRow] = Field(default_factory=list)
    # When the run read its data: its start. The MCP server's read tools take a branch but no
    # point in time, so a run reads the inventory as it is while the run runs.
    data_read_at: float | None = None
    changes: RunChanges | None = None  # a scheduled run's changes since the previous run
    max_cost_usd: float | None = None  # the batch's budget, if it had one

    @computed_field  # type: ignore[prop-decorator]
    @property
    def totals(self) -> ReportTotals:
        # A row that shares another's job (``shared_with``) repeats its figures: counted once.
        rows = [r for r in self.rows if r.shared_with is None]
        return ReportTotals(
            tool_calls=sum(r.tool_calls for r in rows),
            input_tokens=sum(r.input_tokens for r in rows),
            cached_tokens=sum(r.cached_tokens for r in rows),
            output_tokens=sum(r.output_tokens for r in rows),
            attempts=sum(r.attempts for r in rows),
            run_seconds=round(sum(r.duration_seconds or 0.0 for r in rows), 3),
            cost_usd=add_costs(r.cost_usd for r in rows),
            budget_exceeded=sum(1 for r in self.rows if r.error_code == "budget_exceeded"),
        )


def render(report: BatchReport, fmt: ReportFormat) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    return _markdown(report)


def _csv(report: BatchReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in (*CSV_COLUMNS, "metadata")])
    changes = report.changes
    compared = changes is not None and changes.previous_run is not None
    kinds = {q.key: q.kind for q in changes.questions} if changes else {}
    for key, row in zip(row_keys(report.rows), report.rows, strict=True):
        values = row.model_dump()
        values["change"] = kinds.get(key, "unchanged") if compared else None
        cells = [values[c] for c in CSV_COLUMNS]
        cells.append(json.dumps(row.metadata) if row.metadata else None)
        writer.writerow([csv_cell(c) for c in cells])
    for gone in changes.questions if changes else []:
        if gone.kind == "removed":  # in the previous run only: a row saying so
            values = dict.fromkeys(CSV_COLUMNS)
            values.update(change="removed", question=gone.question, answer=gone.before)
            writer.writerow([csv_cell(values[c]) for c in CSV_COLUMNS] + [""])
    return buffer.getvalue()


def _markdown(report: BatchReport) -> str:
    title = report.name or report.batch_id
    totals = report.totals
    lines = [
        f"# Batch report: {md_text(title)}",
        "",
        f"- batch: {code_span(report.batch_id)}"
        + (f" (schedule {md_text(report.schedule)})" if report.schedule else ""),
        f"- status: **{md_text(report.status)}**" + ("" if report.final else " (still running)"),
        f"- questions: {report.total}",
    ]
    if report.data_read_at is not None:
        lines.append(
            f"- data read from {utc_time(report.data_read_at)} (the run's start; the inventory is "
            "read as it is while the run runs)"
        )
    lines.append("")
    if report.changes is not None:
        lines += [*changes_markdown(report.changes, level=2), "## Answers", ""]
    lines += [
        "| " + " | ".join(md_text(k) for k in report.counts) + " |",
        "|" + " --- |" * len(report.counts),
        "| " + " | ".join(str(v) for v in report.counts.values()) + " |",
        "",
        f"Totals: {totals.tool_calls} tool calls, {totals.input_tokens} input "
        f"({totals.cached_tokens} cached) and {totals.output_tokens} output tokens, "
        f"{totals.attempts} attempts, {totals.run_seconds:.1f} s of agent time.",
        "",
        f"Cost: **{usd(totals.cost_usd)}**" + budget_line(report),
        "",
        "| # | question | status | answer or error | attempts | tool calls | tokens in/out "
        "| model (tier) | cost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    tables: list[str] = []
    for row in report.rows:
        if row.error_code is not None:
            outcome = f"{code_span(row.error_code)}: {md_text(row.error_message)}"
        elif row.items is not None and row.item_key is not None:
            outcome = md_text(items_text(row.items, row.item_key)) + f" (table #{row.index} below)"
            tables += ["", f"### #{row.index}: {md_text(row.question)}", ""]
            tables += items_table(row.items, row.item_key)
        else:
            outcome = md_text(row.answer)
        if row.shared_with is not None:
            outcome += f" (the answer of #{row.shared_with}: asked once)"
            cost = "shared"
        else:
            cost = usd(row.cost_usd)
        lines.append(
            f"| {row.index} | {md_text(row.question)} | {md_text(row.status)} | {outcome} | "
            f"{row.attempts} | {row.tool_calls} | {row.input_tokens}/{row.output_tokens} | "
            f"{md_text(answered_by(row))} | {cost} |"
        )
    return "\n".join([*lines, *tables]) + "\n"


def answered_by(row: ReportRow) -> str:
    """The model that answered a row and the tier that served it: ``gpt-5-mini (flex)``."""
    if row.model is None:
        return row.service_tier or ""
    return row.model + (f" ({row.service_tier})" if row.service_tier else "")


def budget_line(report: BatchReport) -> str:
    """What the report says of its budget: none, or how much of it was spent and, once it was,
    how many questions were not run."""
    if report.max_cost_usd is None:
        return "."
    spent = report.totals
    line = f" of a budget of {usd(report.max_cost_usd)}"
    if spent.budget_exceeded:
        line += (
            f"; the budget was spent, so {spent.budget_exceeded} questions were not run "
            "(`budget_exceeded`)"
        )
    return line + "."


def items_table(items: list[Item], item_key: str) -> list[str]:
    """Items as a markdown table: the key first, then every field any item has."""
    if not items:
        return ["(no items)"]
    columns = item_columns(items, item_key)
    lines = [
        "| " + " | ".join(md_text(c) for c in columns) + " |",
        "|" + " --- |" * len(columns),
    ]
    for item in items:
        lines.append("| " + " | ".join(md_text(item.get(c)) for c in columns) + " |")
    return lines
