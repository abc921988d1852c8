"""What every ``agentq`` command shares: settings, the token, one-line errors, output.

Exit codes: 0 done; 1 the job (or batch) failed or was cancelled; 2 bad input, unknown id or bad
settings; 3 a service (Redis) is unreachable; 4 a wait timed out. Errors are one line on stderr,
never a stack trace. Whatever came from a model, a tool or a user is printed through
``cli.render.data`` (or ``printable`` for verbatim output): as text, never as rich markup, and
without control characters.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from agentq.errors import AgentqError, ErrorCode, ServiceUnavailable
from agentq.jobs import Job, JobStatus
from agentq.logs import configure_logging
from agentq.quotas import QuotaExceeded
from agentq.settings import Settings, get_settings
from cli.render import data
from producer.client import Client, Submission

EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_QUOTA = 5
TOKEN_ENV = "INFRAHUB_API_TOKEN"  # noqa: S105 - the variable's name, not a secret

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one-line messages stay one line


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(Text.assemble(("error:", "bold red"), " ", data(message)), soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every expected failure into one line on stderr and its exit code."""
    try:
        yield
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except QuotaExceeded as exc:
        fail(str(exc), EXIT_QUOTA)
    except AgentqError as exc:
        unreachable = exc.code == ErrorCode.MCP_UNAVAILABLE  # a token check at submit
        fail(str(exc), EXIT_UNAVAILABLE if unreachable else EXIT_USAGE)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first.get("loc") else "?"
        fail(f"invalid setting AGENTQ_{name}: {first['msg']}", EXIT_USAGE)


def load_settings() -> Settings:
    with user_errors():
        settings = get_settings()
        # Log lines go to stderr, and only warnings: stdout holds results (and --json).
        configure_logging("WARNING", settings.log_format)
        return settings
    raise AssertionError("unreachable")  # pragma: no cover


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            text = sys.stdin.read() if str(token_file) == "-" else token_file.read_text()
        except OSError as exc:
            # The path is not echoed: a token pasted where the path belongs would be.
            fail(f"cannot read the token file given with --token-file: {exc.strerror}")
        return text.strip()
    return os.environ.get(TOKEN_ENV, "")


TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help=f"File holding the Infrahub token ('-' for stdin); default: ${TOKEN_ENV}.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
JobId = Annotated[str, typer.Argument(help="The job id printed by `agentq submit`.")]


def make_client() -> Client:
    settings = load_settings()
    with user_errors():
        return Client(settings)
    raise AssertionError("unreachable")  # pragma: no cover


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def result_json(job: Job) -> dict[str, Any]:
    data = job.public()
    return {
        key: data[key]
        for key in (
            "id", "status", "answer", "usage", "cost_usd", "error", "attempts", "model",
            "service_tier", "served_tier",
            "created_at", "started_at", "finished_at", "timings", "answer_format", "item_key",
        )
    } | ({"items": data["items"]} if "items" in data else {})  # fmt: skip


def say_if_repeat(submitted: Submission, kind: str) -> None:
    """On stderr, so ``--json`` stays one document: this submit made nothing new."""
    if submitted.repeat:
        err.print(data(f"{kind} {submitted.id} was already submitted with this idempotency key"))


def exit_for(job: Job) -> None:
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise typer.Exit(EXIT_JOB_FAILED)


AnswerFormatOption = Annotated[
    str,
    typer.Option(
        "--answer-format",
        help="text (the default) or items: the answer as a list of items, compared exactly "
        "between report runs.",
    ),
]
ItemKeyOption = Annotated[
    str | None,
    typer.Option("--item-key", help="With --answer-format items: the field naming an item."),
]
IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        metavar="KEY",
        help="Submit at most once with this key (per token, for 24 h): a repeat prints the "
        "first submit's id.",
    ),
]
ServiceTierOption = Annotated[
    str | None,
    typer.Option(
        "--service-tier",
        help="auto, default, flex (about half the price, slower) or priority "
        "(default AGENTQ_SERVICE_TIER).",
    ),
]


def parse_meta(pairs: list[str]) -> dict[str, Any] | None:
    """``--meta KEY=VALUE`` options as a dict (None when there are none)."""
    if not pairs:
        return None
    meta: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--meta expects KEY=VALUE, got {pair!r}")
        meta[key.strip()] = value
    return meta
