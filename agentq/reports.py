"""A batch's report: every question with what became of it, and the totals, in md, json or csv.

The report is built from the job records when the batch ends and kept under its own key, so it
stays readable by batch id after the job records expire; while the batch runs, the same report is
built live from whatever has ended so far.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from agentq.jobs import Job
from agentq.text import printable

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
    writer.writerow([csv_cell(c) for c in (*CSV_COLUMNS, "metadata")])
    for row in rows:
        values = row.model_dump()
        cells = [values[c] for c in CSV_COLUMNS]
        cells.append(json.dumps(row.metadata) if row.metadata else None)
        writer.writerow([csv_cell(c) for c in cells])
    return buffer.getvalue()


# What makes a spreadsheet read a cell as a formula (OWASP "CSV injection"), with the full-width
# forms that some spreadsheets fold to the ASCII ones.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(value: Any) -> Any:
    """A cell no spreadsheet runs: text that could start a formula gets a leading ``'``.

    Numbers that agentq writes (tokens, seconds) stay numbers, negative or not; any text, the
    model's answer or a metadata value such as ``-1 day``, is neutralised, also when the
    dangerous character follows leading spaces or line breaks.
    """
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    raw = str(value)
    text = printable(raw)  # stripping an escape sequence may bare a "=": look at both
    if any(t[:1] in _FORMULA_START or t.lstrip()[:1] in _FORMULA_START for t in (raw, text)):
        return "'" + text
    return text


# Markdown that model or tool text could use to make a link, an image, a code span, emphasis or
# a table cell of its own; each is escaped with a backslash (any ASCII punctuation may be).
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]()!|])")
# Bare URLs that GFM renderers turn into links: "http://" and "www." lose their meaning.
_MD_BARE_LINK = re.compile(r"(?<=[A-Za-z0-9]):(?=//)|(?<![A-Za-z0-9])(?i:www)\.")


def md_text(value: Any) -> str:
    """Model, tool or user text as markdown that renders as that text and nothing else: no
    HTML, no link, image or autolink, one table cell on one line."""
    text = printable("" if value is None else str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_BARE_LINK.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], text)
    return text.replace("\n", "<br>")


def _code(value: str) -> str:
    """An identifier of agentq's own (a batch id, an error code) as a code span."""
    return "`" + re.sub(r"[`|\n]", "", printable(value)) + "`"


def _markdown(report: BatchReport) -> str:
    title = report.name or report.batch_id
    totals = report.totals
    lines = [
        f"# Batch report: {md_text(title)}",
        "",
        f"- batch: {_code(report.batch_id)}"
        + (f" (schedule {md_text(report.schedule)})" if report.schedule else ""),
        f"- status: **{md_text(report.status)}**" + ("" if report.final else " (still running)"),
        f"- questions: {report.total}",
        "",
        "| " + " | ".join(md_text(k) for k in report.counts) + " |",
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
            md_text(row.answer)
            if row.error_code is None
            else f"{_code(row.error_code)}: {md_text(row.error_message)}"
        )
        lines.append(
            f"| {row.index} | {md_text(row.question)} | {md_text(row.status)} | {outcome} | "
            f"{row.attempts} | {row.tool_calls} | {row.input_tokens}/{row.output_tokens} |"
        )
    return "\n".join(lines) + "\n"
