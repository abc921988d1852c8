"""``agentq worker``, ``agentq api`` and ``agentq beat``: the long-running processes.

Each checks its settings and Redis first, so a bad setting is one line and exit 2 before any
process starts; the role itself (``worker``, ``api``, ``scheduler``) is imported only then, so
``agentq submit`` never pays for importing the Agents SDK or the web framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentq.logs import configure_logging
from cli.render import data
from cli.support import fail, load_settings, make_client, out, user_errors
from producer.client import Client

app = typer.Typer()


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
    from worker import run_worker

    run_worker(slots)


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
    from api import serve

    serve(host, port, settings)


@app.command()
def beat(
    schedules: Annotated[
        Path | None,
        typer.Option(help="The schedules file (default AGENTQ_SCHEDULES_FILE)."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the schedules file, then exit.")
    ] = False,
) -> None:
    """Run Celery beat for the schedules file (safe to start on several hosts: one fires)."""
    from scheduler.config import load_schedules
    from scheduler.runs import ScheduleRuns

    settings = load_settings()
    path = schedules or (Path(settings.schedules_file) if settings.schedules_file else None)
    if path is None:
        fail("no schedules file (set AGENTQ_SCHEDULES_FILE or use --schedules)")
    with user_errors():
        reports = load_schedules(path, max_questions=settings.max_batch_questions)
    if check:
        out.print(
            data(f"{path}: {len(reports)} report(s) OK: {', '.join(r.name for r in reports)}")
        )
        return
    client = make_client()
    with user_errors():
        client.ping()
        ScheduleRuns(client).register(reports)
    from scheduler.beat import ReportScheduler, make_beat_app

    beat_app = make_beat_app(settings, reports)
    beat_app.Beat(scheduler=ReportScheduler, loglevel=settings.log_level, max_interval=5).run()
