"""``agentq reports list`` and ``agentq reports show``: read the runs of scheduled reports.

Reading needs only the core (``agentq.schedule_runs``), not beat or the schedules file, so it
works on any host that reaches Redis.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from agentq.batches import Batch
from agentq.errors import JobNotFound
from agentq.reports import FORMATS, render
from agentq.text import printable
from cli.render import data
from cli.support import (
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
    help="Scheduled reports: list them and read their runs.",
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
    for column in ("report", "when", "runs", "latest run", "status", "ended/total"):
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
