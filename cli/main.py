"""The ``agentq`` command line: the command groups, assembled.

Exit codes: 0 done; 1 the job failed or was cancelled; 2 bad input, unknown job or bad settings;
3 a service (Redis) is unreachable; 4 ``wait`` timed out; 5 a quota is used up. Errors are one
line on stderr, never a stack trace. The Infrahub token comes from ``INFRAHUB_API_TOKEN`` or
``--token-file`` (never a command-line argument, which other users of the machine could read
from the process list).
"""

from __future__ import annotations

import sys

import typer

from cli import batch, jobs, keys, reports, services
from cli.support import err

app = typer.Typer(
    name="agentq",
    help="Run Infrahub MCP agents as background jobs.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app)
app.add_typer(jobs.app)
app.add_typer(services.app)
app.add_typer(batch.app, name="batch")
app.add_typer(reports.app, name="reports")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
