"""Model, tool and user text is data in every medium: CSV cells no spreadsheet runs, markdown that
renders no HTML or link, and terminal output that is neither rich markup nor escape sequences.

The hostile jobs are written straight into Redis with the job store the worker uses (no model
run needed), in a database and queue of their own that no worker takes from.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from markdown_it import MarkdownIt

from agentq.jobs import AttemptSummary, JobError, JobStatus, Usage
from agentq.reports import CSV_COLUMNS, BatchReport, ReportRow, render
from agentq.traces import AttemptTrace, Step
from doubles.processes import Service
from tests.conftest import TOKEN_A, CliResult, Stack, own_stack, run_cli, start_api

# Rich markup, a closing tag that crashes rich's parser, an OSC 8 hyperlink, a clear-screen, a
# bell, an 8-bit CSI and a bidi override: none of it may act on a terminal.
MARKUP = "[/] [link=http://evil.example]click[/link] [bold red]x"
HOSTILE = (
    f"{MARKUP} \x1b]8;;http://evil.example\x07here\x1b]8;;\x07 \x1b[2J\x9b2J \u202eevil\u202c end"
)
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


# CSV -------------------------------------------------------------------------------------------


def hostile_row(index: int, start: str) -> ReportRow:
    return ReportRow(
        index=index,
        job_id=f"j{index}",
        question=f'{start}HYPERLINK("http://evil.example")',
        status="failed",
        answer=f"{start}1+1",
        error_code="tool_error",
        error_message=f"{start}cmd|' /C calc'!A0",
        input_tokens=-3,  # a number agentq writes: stays a number, even negative
        output_tokens=7,
        duration_seconds=-0.5,
        metadata={"note": f"{start}x"},
    )


def parsed_csv(rows: list[ReportRow]) -> list[dict[str, str]]:
    report = BatchReport(
        batch_id="b1", status="failed", created_at=0, total=len(rows), counts={}, rows=rows
    )
    return list(csv.DictReader(io.StringIO(render(report, "csv"))))


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=[f"U+{ord(c):04X}" for c in FORMULA_STARTS])
def test_csv_cells_that_could_start_a_formula_are_neutralised(start: str) -> None:
    (row,) = parsed_csv([hostile_row(1, start)])
    for column in ("question", "answer", "error_message"):
        assert row[column].startswith("'"), (column, row[column])
    # Metadata is one JSON object per row: its cell starts with "{", and keeps the value whole.
    assert json.loads(row["metadata"]) == {"note": f"{start}x"}
    assert row["answer"] == "'" + f"{start}1+1".replace("\r", "")
    # What agentq itself counts stays a number.
    assert (row["input_tokens"], row["output_tokens"], row["duration_seconds"]) == (
        "-3",
        "7",
        "-0.5",
    )
    assert (row["index"], row["status"], row["error_code"]) == ("1", "failed", "tool_error")


def test_csv_neutralises_text_from_the_model_that_looks_like_a_number() -> None:
    row = ReportRow(
        index=1, job_id="j", question="q", status="succeeded", answer="-1 day",
        metadata={"=cmd": "@SUM(A1)"},
    )  # fmt: skip
    (parsed,) = parsed_csv([row])
    assert parsed["answer"] == "'-1 day"
    assert set(parsed) == {*CSV_COLUMNS, "metadata"}
    assert parsed["metadata"] == '{"=cmd": "@SUM(A1)"}'  # one JSON cell: it starts with "{"
    for leading in (" =1+1", "\n@x", "\u3000\uff1d1", "\x1b=1+1"):
        (spaced,) = parsed_csv([row.model_copy(update={"answer": leading})])
        assert spaced["answer"].startswith("'"), leading


# Markdown --------------------------------------------------------------------------------------

EVIL_MARKDOWN = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![pixel](http://evil.example/p.png)",
    "<javascript:alert(1)>",
    "<http://evil.example>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "\\[x\\](javascript:alert(1))",
    "`code` | cell | break\n| --- |\nnew row",
    "&lt;script&gt; <a href='javascript:alert(1)'>x</a>",
    "see http://evil.example and www.evil.example",
    HOSTILE,
]


REPORT_TAGS = {"h1", "ul", "li", "code", "strong", "p", "br", "table", "thead", "tbody", "tr"}
REPORT_TAGS |= {"th", "td"}


def test_markdown_report_renders_model_text_as_text() -> None:
    rows = [
        ReportRow(index=i, job_id=f"j{i}", question=text, status="succeeded", answer=text)
        for i, text in enumerate(EVIL_MARKDOWN)
    ]
    rows.append(
        ReportRow(
            index=len(rows), job_id="jx", question="q", status="failed",
            error_code="tool_error", error_message=EVIL_MARKDOWN[2] + EVIL_MARKDOWN[0],
        )
    )  # fmt: skip
    report = BatchReport(
        batch_id="b1", name="<b onmouseover=x>[n](javascript:x)</b>", schedule="[s](javascript:y)",
        status="failed", created_at=0, total=len(rows), counts={"failed": 1}, rows=rows,
    )  # fmt: skip
    markdown = render(report, "md")
    # HTML enabled: the renderer a wiki or a mail client uses would pass raw HTML through.
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    lowered = html.lower()
    for forbidden in ("<script", "<img", "<a ", "<b "):
        assert forbidden not in lowered, forbidden
    # Every tag is one the report itself makes, and none has an attribute (no href, no src, no
    # event handler, so no javascript: in one): the hostile text above is all text.
    tags = re.findall(r"<(/?)([a-z0-9]+)([^>]*)>", lowered)
    assert {name for _, name, _ in tags} <= REPORT_TAGS, {name for _, name, _ in tags}
    assert all(attributes == "" for _, _, attributes in tags)
    assert UNPRINTABLE.search(markdown) is None
    # One table row per question, each with all nine cells: no cell broke out.
    table = html.split("<table>")[2]
    assert table.count("<tr>") == len(rows) + 1
    assert all(tr.count("<td>") == 9 for tr in table.split("<tr>")[2:])
    # And the text itself is shown, escaped, not dropped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[click](javascript:alert(1))" in html


# The terminal ----------------------------------------------------------------------------------


@dataclass
class Hostile:
    stack: Stack
    succeeded: str
    failed: str
    batch: str


@pytest.fixture(scope="module")
def hostile(stack: Stack) -> Hostile:
    # No worker takes from this queue: the jobs stay as written here.
    own = own_stack(stack, 26, "escaping-tests", COLUMNS="400")
    client = own.client()
    store = client.store
    succeeded = client.submit(HOSTILE, TOKEN_A, metadata={"note": HOSTILE})
    failed = client.submit("=1+1", TOKEN_A)
    now = time.time()
    store.record_attempt(
        succeeded,
        AttemptSummary(attempt=1, started_at=now, finished_at=now, outcome="succeeded"),
        AttemptTrace(
            attempt=1, started_at=now, finished_at=now, outcome="succeeded",
            error_code="tool_error", error_message=HOSTILE,
            steps=[
                Step(kind="model_call", model=HOSTILE, input_tokens=1, output_tokens=2),
                Step(kind="tool_call", tool=HOSTILE, arguments={"q": HOSTILE}, is_error=True,
                     error=HOSTILE, result_bytes=3),
                Step(kind="final_output", output=HOSTILE),
            ],
        ),
    )  # fmt: skip
    usage = Usage(requests=1, input_tokens=1, output_tokens=2)
    assert store.finish(succeeded, JobStatus.SUCCEEDED, answer=HOSTILE, usage=usage)
    assert store.finish(
        failed, JobStatus.FAILED, error=JobError(code="tool_error", message=HOSTILE)
    )
    batch = client.submit_batch(["=1+1", HOSTILE], TOKEN_A, name=MARKUP + " \x1b[2J")
    for job_ids in client.batches.job_ids(batch):
        for job_id in job_ids:
            store.finish(job_id, JobStatus.SUCCEEDED, answer="-1 day " + HOSTILE)
    return Hostile(own, succeeded, failed, batch)


def shown(hostile: Hostile, *args: str) -> CliResult:
    result = run_cli(hostile.stack.env, *args, token=TOKEN_A)
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert UNPRINTABLE.search(both) is None, repr(both)
    return result


# Each CLI run costs about a second: ``result`` covers ``status`` (it shows the same table).
@pytest.mark.parametrize("command", ["result", "wait", "trace"])
def test_job_commands_print_model_text_as_text(hostile: Hostile, command: str) -> None:
    result = shown(hostile, command, hostile.succeeded)
    assert result.code == 0, result
    assert MARKUP in result.stdout, result.stdout
    assert "evil end" in result.stdout  # the text around what was stripped is kept


@pytest.mark.parametrize(("command", "code"), [("status", 0), ("wait", 1)])
def test_a_failed_jobs_hostile_error_is_shown_as_text(
    hostile: Hostile, command: str, code: int
) -> None:
    result = shown(hostile, command, hostile.failed)
    assert result.code == code, result
    assert MARKUP in result.stdout + result.stderr


def test_an_unknown_id_with_markup_is_one_error_line(hostile: Hostile) -> None:
    result = shown(hostile, "status", "[/]\x1b[2J")
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "[/]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_batch_commands_print_names_and_reports_as_text(hostile: Hostile) -> None:
    for args in (["status", hostile.batch], ["list"]):
        result = shown(hostile, "batch", *args)
        # A table wraps a long name over lines: compare the words.
        assert result.code == 0 and MARKUP in " ".join(result.stdout.split()), result
    as_csv = shown(hostile, "batch", "report", hostile.batch, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows[0]["question"] == "'=1+1"
    assert all(r["answer"].startswith("'-1 day [/]") for r in rows)


# The API ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(hostile: Hostile, service_dir: Path) -> Iterator[Service]:
    service = start_api(hostile.stack.env, service_dir)
    hostile.stack.logs.append(service.log_path)
    yield service
    service.stop()


def test_the_api_serves_a_csv_report_as_a_download(hostile: Hostile, api: Service) -> None:
    response = httpx.get(
        f"{api.base_url}/v1/batches/{hostile.batch}/report",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{hostile.batch}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["question"] == "'=1+1" and rows[1]["answer"].startswith("'-1 day")
