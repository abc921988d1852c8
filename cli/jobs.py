"""``agentq submit``, ``status``, ``result``, ``wait``, ``cancel`` and ``trace``: one job.

Each reads the token (never from the command line), makes a client and maps the client's errors
to one line and an exit code (``cli.support``); what a job looks like in a terminal is
``cli.render``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from agentq.jobs import Job, JobStatus
from agentq.text import printable
from cli.render import data, items_view, result_view, status_table, trace_view
from cli.support import (
    EXIT_JOB_FAILED,
    EXIT_TIMEOUT,
    AnswerFormatOption,
    IdempotencyKeyOption,
    ItemKeyOption,
    JobId,
    JsonFlag,
    ServiceTierOption,
    TokenFile,
    emit_json,
    err,
    exit_for,
    fail,
    make_client,
    out,
    parse_meta,
    read_token,
    result_json,
    say_if_repeat,
    user_errors,
)
from producer.client import Client

app = typer.Typer()


@app.command()
def submit(
    question: Annotated[str, typer.Argument(help="The question for the agent.")],
    token_file: TokenFile = None,
    deadline: Annotated[
        float | None,
        typer.Option(help="Seconds one attempt may run (default AGENTQ_JOB_DEADLINE_SECONDS)."),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--meta", help="KEY=VALUE kept with the job (repeatable)."),
    ] = None,
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Offer the agent the server's write tools too (needs AGENTQ_ALLOW_WRITE_TOOLS).",
        ),
    ] = False,
    webhook: Annotated[
        str | None, typer.Option(help="URL that gets a signed POST when the job ends.")
    ] = None,
    answer_format: AnswerFormatOption = "text",
    item_key: ItemKeyOption = None,
    service_tier: ServiceTierOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue a question; prints the job id at once."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        submitted = client.submit(
            question,
            token,
            metadata=parse_meta(metadata or []),
            deadline=deadline,
            allow_writes=allow_writes,
            webhook_url=webhook,
            answer_format=answer_format,
            item_key=item_key,
            idempotency_key=idempotency_key,
            service_tier=service_tier,
        )
    job_id = submitted.id
    say_if_repeat(submitted, "job")
    if as_json:
        emit_json({"id": job_id, "status": JobStatus.QUEUED})
    else:
        sys.stdout.write(job_id + "\n")


def _read_job(job_id: str, token_file: Path | None) -> tuple[Client, str, Job]:
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        return client, token, client.get(job_id, token)
    raise AssertionError("unreachable")  # pragma: no cover


@app.command()
def status(job_id: JobId, token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Show a job's status, attempts and timings."""
    _, _, job = _read_job(job_id, token_file)
    if as_json:
        data = job.public()
        data.pop("answer", None)
        emit_json(data)
    else:
        out.print(status_table(job))


@app.command()
def result(job_id: JobId, token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Show a job's answer, usage, timings and error (exit 1 if it failed)."""
    _, _, job = _read_job(job_id, token_file)
    if as_json:
        emit_json(result_json(job))
    elif not job.status.terminal:
        err.print(data(f"job {job.id} is {job.status}: no result yet (try `agentq wait {job.id}`)"))
    else:
        out.print(result_view(job))
    if not job.status.terminal:
        raise typer.Exit(EXIT_JOB_FAILED)
    exit_for(job)


@app.command()
def wait(
    job_id: JobId,
    token_file: TokenFile = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit 4).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Block until the job ends, then print its answer (exit 1 if it failed)."""
    client, token, job = _read_job(job_id, token_file)
    show: Callable[[Job], None]
    with err.status(data(f"job {job.id}: {job.status}"), spinner="dots") as spinner:

        def show(current: Job) -> None:
            spinner.update(data(f"job {current.id}: {current.status} (attempt {current.attempts})"))

        with user_errors():
            try:
                job = client.wait(job.id, token, timeout=timeout, on_poll=show)
            except TimeoutError as exc:
                fail(str(exc), EXIT_TIMEOUT)
    if as_json:
        emit_json(result_json(job))
    elif job.status == JobStatus.SUCCEEDED and job.items is not None and job.item_key:
        out.print(items_view(job.items, job.item_key))
    elif job.status == JobStatus.SUCCEEDED:
        # Verbatim (no wrapping, pipes cleanly), but nothing a terminal would act on.
        sys.stdout.write(printable(job.answer or "") + "\n")
    else:
        error = job.error
        reason = f"{error.code}: {error.message}" if error else job.status
        err.print(Text.assemble((f"job {job.status}:", "bold red"), " ", data(reason)))
    exit_for(job)


@app.command()
def cancel(job_id: JobId, token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Cancel a job: a queued job never runs, a running one stops within about a second."""
    client, token, job = _read_job(job_id, token_file)
    with user_errors():
        outcome = client.cancel(job.id, token)
    if as_json:
        emit_json(
            {"id": job.id, "previous_status": outcome.previous, "cancelled": outcome.cancelled}
        )
    elif outcome.cancelled:
        out.print(data(f"job {job.id} cancelled (it was {outcome.previous})"))
    else:
        err.print(data(f"job {job.id} had already ended ({outcome.previous}): nothing to cancel"))


@app.command()
def trace(job_id: JobId, token_file: TokenFile = None, as_json: JsonFlag = False) -> None:
    """Show what the agent did: model calls, tool calls, tokens and timings."""
    client, token, job = _read_job(job_id, token_file)
    with user_errors():
        job_trace = client.trace(job.id, token)
    if as_json:
        emit_json(job_trace.to_json_dict())
    else:
        out.print(trace_view(job_trace))
