"""A batch's report: every question with what became of it, and the totals, in md, json or csv.

The report is built from the job records when the batch ends and kept under its own key, so it
stays readable by batch id after the job records expire; while the batch runs, the same report is
built live from whatever has ended so far.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from agentq.jobs import Job

ReportFormat = Literal["md", "json", "csv"]
FORMATS: tuple[ReportFormat, ...] = ("md", "json", "csv")
CSV_COLUMNS = (
    "index", "job_id", "question", "status", "answer", "error_code", "error_message",
    "attempts", "tool_calls", "input_tokens", "output_tokens", "duration_seconds",
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
    output_tokens: int = 0
    duration_seconds: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

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
            output_tokens=job.usage.output_tokens if job.usage else 0,
            duration_seconds=job.run_seconds,
            metadata=job.metadata,
        )


class ReportTotals(BaseModel):
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0
    run_seconds: float = 0.0


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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def totals(self) -> ReportTotals:
        return ReportTotals(
            tool_calls=sum(r.tool_calls for r in self.rows),
            input_tokens=sum(r.input_tokens for r in self.rows),
            output_tokens=sum(r.output_tokens for r in self.rows),
            attempts=sum(r.attempts for r in self.rows),
            run_seconds=round(sum(r.duration_seconds or 0.0 for r in self.rows), 3),
        )


def render(report: BatchReport, fmt: ReportFormat) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return _csv(report.rows)
    return _markdown(report)


def _csv(rows: Iterable[ReportRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "metadata"])
    for row in rows:
        values = row.model_dump()
        cells = ["" if values[c] is None else values[c] for c in CSV_COLUMNS]
        writer.writerow([*cells, json.dumps(row.metadata) if row.metadata else ""])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    """A value safe inside a markdown table cell (one line, no stray pipes)."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _markdown(report: BatchReport) -> str:
    title = report.name or report.batch_id
    totals = report.totals
    lines = [
        f"# Batch report: {_cell(title)}",
        "",
        f"- batch: `{report.batch_id}`"
        + (f" (schedule `{report.schedule}`)" if report.schedule else ""),
        f"- status: **{report.status}**" + ("" if report.final else " (still running)"),
        f"- questions: {report.total}",
        "",
        "| " + " | ".join(report.counts) + " |",
        "|" + " --- |" * len(report.counts),
        "| " + " | ".join(str(v) for v in report.counts.values()) + " |",
        "",
        f"Totals: {totals.tool_calls} tool calls, {totals.input_tokens} input and "
        f"{totals.output_tokens} output tokens, {totals.attempts} attempts, "
        f"{totals.run_seconds:.1f} s of agent time.",
        "",
        "| # | question | status | answer or error | attempts | tool calls | tokens in/out |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report.rows:
        outcome = (
            row.answer if row.error_code is None else f"`{row.error_code}`: {row.error_message}"
        )
        lines.append(
            f"| {row.index} | {_cell(row.question)} | {row.status} | {_cell(outcome)} | "
            f"{row.attempts} | {row.tool_calls} | {row.input_tokens}/{row.output_tokens} |"
        )
    return "\n".join(lines) + "\n"
