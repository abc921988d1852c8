"""``agentq reports``: list scheduled reports, show and diff their runs, start one now.

Reading needs only the core (``agentq.schedule_runs``), not beat or the schedules file, so it
works on any host that reaches Redis. ``reports run`` asks the beat to start a run (the beat
holds the report's token and the scheduler's lock) and waits for its answer.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from agentq.batches import Batch
from agentq.errors import JobNotFound
from agentq.prices import usd
from agentq.report_changes import DIFF_FORMATS, plain_mark, render_changes
from agentq.reports import FORMATS, render
from agentq.text import printable
from cli.render import ansi_mark, data
from cli.support import (
    EXIT_JOB_FAILED,
    EXIT_UNAVAILABLE,
    JsonFlag,
    TokenFile,
    emit_json,
    err,
    fail,
    make_client,
    out,
    read_token,
    user_errors,
)
from producer.client import Client

app = typer.Typer(
    help="Scheduled reports: list them, read and compare their runs, start one now.",
    no_args_is_help=True,
    add_completion=False,
)


def _pick_run(client: Client, name: str, token: str, run: str | None) -> Batch:
    with user_errors():
        runs = client.scheduled.runs(name)
        for candidate in runs:
            if run is not None and candidate.batch_id != run:
                continue
            batch = client.batches.load(candidate.batch_id)
            if batch is not None and client.sealer.owns(batch.owner, token):
                return batch
        raise JobNotFound(run or name, kind="run" if run else "report")
    raise AssertionError("unreachable")  # pragma: no cover


@app.command("list")
def list_reports(token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Your scheduled reports, each with its latest run."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        rows = client.scheduled.owned_by(token)
    if as_json:
        emit_json(rows)
        return
    table = Table()
    for column in ("report", "when", "runs", "latest run", "status", "ended/total", "cost"):
        table.add_column(column)
    for row in rows:
        last: dict[str, Any] | None = row["latest"]  # type: ignore[assignment]
        if row["cron"]:
            when = f"{row['cron']} {row['timezone']}"
        else:
            when = f"every {row['interval_seconds']}s"
        progress = "-"
        if last:
            ended = sum(last["counts"][s] for s in ("succeeded", "failed", "cancelled"))
            progress = f"{ended}/{last['total']}"
        cells = (
            row["name"],
            when,
            len(row["runs"]),
            last["id"] if last else "-",
            last["status"] if last else "-",
            progress,
            usd(last.get("cost_usd")) if last else "-",
        )
        table.add_row(*(data(c) for c in cells))
    out.print(table)


@app.command("show")
def show_report(
    name: Annotated[str, typer.Argument(help="The report's name in the schedules file.")],
    token_file: TokenFile = None,
    run: Annotated[str | None, typer.Option(help="A run's batch id (default: the latest).")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The latest run (the default).")] = True,
    fmt: Annotated[str, typer.Option("--format", help="md, json or csv.")] = "md",
) -> None:
    """A run's report; a run still going shows its progress so far."""
    del latest  # the default; --run picks another
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    token = read_token(token_file)
    client = make_client()
    batch = _pick_run(client, name, token, run)
    with user_errors():
        report = client.batch_report(batch.id, token)
    if not report.final:
        err.print(
            data(f"run {batch.id} is still going: {batch.ended}/{batch.total} questions done")
        )
    sys.stdout.write(printable(render(report, fmt)))  # type: ignore[arg-type]


@app.command("diff")
def diff_report(
    name: Annotated[str, typer.Argument(help="The report's name in the schedules file.")],
    token_file: TokenFile = None,
    from_run: Annotated[
        str | None, typer.Option("--from", help="The older run's id (default: the one before).")
    ] = None,
    to_run: Annotated[
        str | None, typer.Option("--to", help="The newer run's id (default: the latest finished).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, md or json.")] = "text",
) -> None:
    """What changed between two finished runs, per question.

    Exit 0 when nothing changed, 1 when something did, 2 on bad input."""
    if fmt not in DIFF_FORMATS:
        fail(f"--format must be one of {', '.join(DIFF_FORMATS)}, not {fmt!r}")
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        changes = client.report_diff(name, token, from_run=from_run, to_run=to_run)
    if changes.previous_run is None:
        err.print(
            data(
                f"report {name!r} has no earlier finished run to compare run "
                f"{changes.run} with: nothing to diff yet"
            )
        )
    colour = fmt == "text" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    sys.stdout.write(render_changes(changes, fmt, ansi_mark if colour else plain_mark))  # type: ignore[arg-type]
    raise typer.Exit(1 if changes.changed else 0)


@app.command("run")
def run_report(
    name: Annotated[str, typer.Argument(help="The report's name in the schedules file.")],
    token_file: TokenFile = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the beat to take the request.")
    ] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of the report now, outside its schedule; prints the run's id.

    The beat starts it, with the report's own token and under its lock: a run by hand in a
    minute the schedule is due takes that tick (the schedule starts nothing more in it), and the
    report's overlap rule applies (with a run still going, ``overlap: skip`` refuses)."""
    token = read_token(token_file)
    client = make_client()
    with err.status(data(f"asking the beat to start {name}"), spinner="dots"), user_errors():
        try:
            outcome = client.run_report(name, token, timeout=timeout)
        except TimeoutError as exc:
            fail(str(exc), EXIT_UNAVAILABLE)
    if outcome.get("status") != "started":
        fail(f"report {name!r} not started: {outcome.get('reason', 'unknown')}", EXIT_JOB_FAILED)
    if as_json:
        emit_json({"report": name, "run": outcome["run"], "status": "started"})
    else:
        sys.stdout.write(outcome["run"] + "\n")
