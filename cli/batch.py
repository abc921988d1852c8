"""``agentq batch ...``: submit a file of questions, follow it, read its report, cancel it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from agentq.batches import Batch, BatchStatus
from agentq.prices import usd
from agentq.reports import FORMATS, render
from agentq.text import printable
from cli.render import data
from cli.support import (
    EXIT_JOB_FAILED,
    EXIT_TIMEOUT,
    AnswerFormatOption,
    IdempotencyKeyOption,
    ItemKeyOption,
    JsonFlag,
    ServiceTierOption,
    TokenFile,
    emit_json,
    err,
    fail,
    make_client,
    out,
    parse_meta,
    read_token,
    say_if_repeat,
    user_errors,
)
from producer.batch_files import load_batch_file

app = typer.Typer(
    help="Batch audits: many questions, one report.", no_args_is_help=True, add_completion=False
)
BatchId = Annotated[str, typer.Argument(help="The batch id printed by `agentq batch submit`.")]


def counts_table(batch: Batch) -> Table:
    table = Table(title=data(f"batch {batch.id}" + (f" ({batch.name})" if batch.name else "")))
    for column in ("status", "total", "queued", "running", "succeeded", "failed", "cancelled"):
        table.add_column(column)
    counts = batch.public()["counts"]
    table.add_row(
        data(batch.status),
        data(batch.total),
        *(data(counts[s]) for s in ("queued", "running", "succeeded", "failed", "cancelled")),
    )
    spent = f"cost so far: {usd(batch.cost_usd)}"
    if batch.max_cost_usd is not None:
        spent += f" of a budget of {usd(batch.max_cost_usd)}"
    if batch.shared:
        spent += f"; {batch.shared} repeated questions share an earlier one's answer"
    table.caption = spent
    return table


def exit_for_batch(batch: Batch) -> None:
    if batch.status != BatchStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command("submit")
def submit_batch(
    file: Annotated[
        Path, typer.Argument(help="Questions: .txt (one per line), .yaml, .json, .csv")
    ],
    token_file: TokenFile = None,
    name: Annotated[str | None, typer.Option(help="A name shown in status and report.")] = None,
    max_inflight: Annotated[
        int | None,
        typer.Option(
            help="Jobs of this batch running at once (default AGENTQ_BATCH_MAX_INFLIGHT)."
        ),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="URL that gets a signed POST when the batch ends.")
    ] = None,
    deadline: Annotated[float | None, typer.Option(help="Seconds one attempt may run.")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--meta", help="KEY=VALUE kept with the batch.")
    ] = None,
    answer_format: AnswerFormatOption = "text",
    item_key: ItemKeyOption = None,
    service_tier: ServiceTierOption = None,
    max_cost_usd: Annotated[
        float | None,
        typer.Option(
            "--max-cost-usd",
            help="Dollars the batch may spend at the price table's prices; once spent, its "
            "remaining questions end budget_exceeded.",
        ),
    ] = None,
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe/--no-dedupe",
            help="Ask identical questions (once trimmed) once and give each row the answer.",
        ),
    ] = True,
    idempotency_key: IdempotencyKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue every question of FILE as one batch; prints the batch id at once."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        items = load_batch_file(file, max_questions=client.settings.max_batch_questions)
        submitted = client.submit_batch(
            items,
            token,
            name=name,
            max_inflight=max_inflight,
            webhook_url=webhook,
            metadata=parse_meta(metadata or []),
            deadline=deadline,
            answer_format=answer_format,
            item_key=item_key,
            idempotency_key=idempotency_key,
            service_tier=service_tier,
            max_cost_usd=max_cost_usd,
            dedupe=dedupe,
        )
    batch_id = submitted.id
    say_if_repeat(submitted, "batch")
    if as_json:
        emit_json({"id": batch_id, "total": len(items)})
    else:
        sys.stdout.write(batch_id + "\n")


@app.command("status")
def batch_status(
    batch_id: BatchId, token_file: TokenFile = None, as_json: JsonFlag = False
) -> None:
    """Counts of the batch's jobs by status."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        batch = client.batch(batch_id, token)
    if as_json:
        emit_json(batch.public())
    else:
        out.print(counts_table(batch))


@app.command("wait")
def wait_batch(
    batch_id: BatchId,
    token_file: TokenFile = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit 4).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a progress bar until every job has ended (exit 1 unless all succeeded)."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        batch = client.batch(batch_id, token)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=12),  # the whole line fits 80 columns (a log, a CI console)
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        task = progress.add_task("batch", total=batch.total, detail="")

        started = time.monotonic()
        ended_at_start = batch.ended

        def show(current: Batch) -> None:
            counts = current.counts
            elapsed = max(time.monotonic() - started, 1e-6)
            rate = (current.ended - ended_at_start) / elapsed
            progress.update(
                task,
                completed=current.ended,
                detail=(
                    f"ok {counts.get('succeeded', 0)} failed {counts.get('failed', 0)} "
                    f"running {counts.get('running', 0)} {rate:.1f}/s"
                ),
            )

        with user_errors():
            try:
                batch = client.wait_batch(batch.id, token, timeout=timeout, on_poll=show)
            except TimeoutError as exc:
                fail(str(exc), EXIT_TIMEOUT)
    if as_json:
        emit_json(batch.public())
    else:
        out.print(counts_table(batch))
    exit_for_batch(batch)


@app.command("report")
def batch_report(
    batch_id: BatchId,
    token_file: TokenFile = None,
    fmt: Annotated[str, typer.Option("--format", help="md, json or csv.")] = "md",
    output: Annotated[Path | None, typer.Option(help="Write to this file instead.")] = None,
) -> None:
    """Every question with its status, answer, error code, attempts, tool calls and tokens."""
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        report = client.batch_report(batch_id, token)
    text = render(report, fmt)  # type: ignore[arg-type]
    if output is None:
        sys.stdout.write(printable(text))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    err.print(data(f"report written to {output}"))


@app.command("cancel")
def cancel_batch(
    batch_id: BatchId, token_file: TokenFile = None, as_json: JsonFlag = False
) -> None:
    """Cancel the batch's queued and running jobs."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        cancelled = client.cancel_batch(batch_id, token)
    if as_json:
        emit_json({"id": batch_id, "cancelled_jobs": cancelled})
    else:
        out.print(data(f"batch {batch_id}: {cancelled} job(s) cancelled"))


@app.command("list")
def list_batches(token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Your most recent batches."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        batches = client.list_batches(token)
    if as_json:
        emit_json([b.public() for b in batches])
        return
    table = Table()
    for column in ("id", "name", "status", "ended", "total", "created"):
        table.add_column(column)
    for b in batches:
        cells = (b.id, b.name, b.status, b.ended, b.total, f"{b.created_at:.0f}")
        table.add_row(*(data(c) for c in cells))
    out.print(table)
