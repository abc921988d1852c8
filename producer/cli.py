"""The ``agentq`` command line.

Exit codes: 0 done; 1 the job failed or was cancelled; 2 bad input, unknown job or bad settings;
3 a service (Redis) is unreachable; 4 ``wait`` timed out. Errors are one line on stderr, never a
stack trace. The Infrahub token comes from ``INFRAHUB_API_TOKEN`` or ``--token-file`` (never a
command-line argument, which other users of the machine could read from the process list).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from agentq.errors import ErrorCode
from agentq.jobs import Job, JobStatus
from agentq.logs import configure_logging
from agentq.sealing import generate_key
from agentq.settings import get_settings
from agentq.text import printable
from producer.batch_cli import batch_app
from producer.cli_support import (
    EXIT_JOB_FAILED,
    EXIT_TIMEOUT,
    JobId,
    JsonFlag,
    TokenFile,
    emit_json,
    err,
    exit_for,
    fail,
    load_settings,
    make_client,
    out,
    parse_meta,
    read_token,
    result_json,
    user_errors,
)
from producer.client import Client
from producer.render import data, result_view, status_table, trace_view
from scheduler.cli import beat, reports_app

app = typer.Typer(
    name="agentq",
    help="Run Infrahub MCP agents as background jobs.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(batch_app, name="batch")
app.add_typer(reports_app, name="reports")
app.command("beat")(beat)


@app.command()
def keygen() -> None:
    """Print a new key for AGENTQ_SECRET_KEY."""
    sys.stdout.write(generate_key() + "\n")


@app.command()
def reseal(as_json: JsonFlag = False) -> None:
    """Move every waiting job to the newest AGENTQ_SECRET_KEY key.

    Each job that has not ended gets its token sealed again under the newest
    key (keeping the time it was first sealed) and its owner fingerprint made
    again under the newest key (its batch's too), so its owner can still read,
    list and cancel it, and workers can run it, once the old key is gone.

    To rotate: put a new key first in AGENTQ_SECRET_KEY (keeping the old one
    after it), restart producers and workers, run this, then drop the old key.
    Jobs that ended before this ran stay readable only while the old key is
    listed. Exits 1 if a token could not be opened or was not sealed for its
    job (that job will fail auth_error; its owner submits it again).
    """
    client = make_client()
    with user_errors():
        counts = client.store.reseal_waiting(client.sealer)
    if as_json:
        emit_json(
            {
                "resealed": counts.resealed,
                "owners_moved": counts.moved,
                "unreadable": counts.unreadable,
                "dropped": counts.dropped,
            }
        )
    else:
        out.print(
            f"resealed {counts.resealed} waiting job(s) under the newest key "
            f"({counts.moved} moved to the newest key's owner fingerprint); "
            f"{counts.unreadable} could not be opened or were not sealed for their job; "
            f"{counts.dropped} token(s) of ended jobs deleted"
        )
    if counts.unreadable:
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command("webhook-secret")
def webhook_secret(token_file: TokenFile = None) -> None:
    """Print the secret (whsec_...) that signs your webhooks, for your receiver to verify them.

    It is yours alone, derived from AGENTQ_WEBHOOK_SECRET and your token's owner fingerprint;
    fetch it again after the deployment rotates AGENTQ_SECRET_KEY.
    """
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        secret = client.webhook_secret(token)
    sys.stdout.write(secret + "\n")


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
    as_json: JsonFlag = False,
) -> None:
    """Enqueue a question; prints the job id at once."""
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        job_id = client.submit(
            question,
            token,
            metadata=parse_meta(metadata or []),
            deadline=deadline,
            allow_writes=allow_writes,
            webhook_url=webhook,
        )
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


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Jobs in flight in each process (default AGENTQ_WORKER_CONCURRENCY)."),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes, each with its own event loop: about one per core "
            "(default AGENTQ_WORKER_PROCESSES).",
        ),
    ] = None,
    group: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run a Celery worker that takes jobs from the queue."""
    settings = load_settings()
    with user_errors():
        from agentq.sealing import TokenSealer
        from worker.clients import check_model_settings

        TokenSealer(settings.secret_key.get_secret_value() if settings.secret_key else None)
        check_model_settings(settings)
        client = Client(settings)
        client.ping()
    slots = concurrency or settings.worker_concurrency
    count = processes or settings.worker_processes
    if count > 1:
        from worker.supervisor import Supervisor

        configure_logging(settings.log_level, settings.log_format)
        raise typer.Exit(Supervisor(count, slots, settings.worker_metrics_port).run())
    # The worker registers its slots for dispatch from its settings: make them agree.
    os.environ["AGENTQ_WORKER_CONCURRENCY"] = str(slots)
    get_settings.cache_clear()
    from worker.app import run

    run(slots, supervisor_pid=group)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve the HTTP API, its OpenAPI document (/docs) and the dashboard (/)."""
    settings = load_settings()
    with user_errors():
        client = Client(settings)
        client.ping()
        configure_logging(settings.log_level, settings.log_format)
    from producer.http import serve

    serve(host, port, settings)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


__all__ = ["ErrorCode", "app", "main"]
