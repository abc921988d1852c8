"""Redaction: no token reaches a log line, whatever logged it and however."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from agentq.logs import REDACTED, configure_logging, get_logger, scrub, scrub_data, secret_scope
from agentq.traces import AttemptTrace, Step
from doubles.processes import free_port

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "ihtoken-logtest-9f8e7d6c5b4a"


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_sensitive_keys_are_redacted_at_any_depth(log_stream: io.StringIO) -> None:
    get_logger("t").info(
        "calling",
        token="abc123secret",
        headers={"Authorization": "Bearer xyz", "Accept": "json"},
        nested=[{"api_key": "k-1"}],
    )
    (line,) = lines(log_stream)
    assert line["token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert line["nested"] == [{"api_key": REDACTED}]
    assert "abc123secret" not in log_stream.getvalue()


def test_bearer_values_are_redacted_in_free_text(log_stream: io.StringIO) -> None:
    logging.getLogger("some.library").warning("sent header Authorization: Bearer qwerty123")
    assert "qwerty123" not in log_stream.getvalue()
    assert f"Bearer {REDACTED}" in log_stream.getvalue()


def test_registered_secrets_are_redacted_everywhere(log_stream: io.StringIO) -> None:
    with secret_scope(TOKEN):
        get_logger("t").info(f"token in the event {TOKEN}", detail=f"x{TOKEN}y")
        logging.getLogger("celery").error("stdlib line %s", TOKEN)
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            logging.getLogger("t").exception("failure")
    text = log_stream.getvalue()
    assert TOKEN not in text
    assert text.count(REDACTED) >= 4
    assert "boom" in text  # the traceback is kept, only the secret is gone


def test_secret_scope_ends(log_stream: io.StringIO) -> None:
    with secret_scope("short-lived-secret-42"):
        pass
    get_logger("t").info("short-lived-secret-42")
    assert "short-lived-secret-42" in log_stream.getvalue()


def test_console_format_also_redacts() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream)
    get_logger("t").info("hello", authorization="Bearer abc")
    assert "abc" not in stream.getvalue()
    assert "hello" in stream.getvalue()


SECRET = "s3cr3t-VALUE-0042"  # not token-shaped: it must be found by the shape around it
SHAPES = [
    f"GET http://infrahub.local/api/schema?token={SECRET}&branch=main",
    f"POST form body api_token={SECRET}&next=1",
    f"access_token={SECRET}",
    f'got body {{"token": "{SECRET}", "kind": "DcimDevice"}}',
    f'escaped JSON {{\\"token\\": \\"{SECRET}\\"}}',
    f"request headers X-INFRAHUB-KEY: {SECRET}",
    f"headers={{'x-infrahub-key': '{SECRET}', 'accept': 'json'}}",
    f"Authorization: Basic {SECRET}",
    f"Authorization: Token {SECRET}",
    f"Authorization: Bearer {SECRET}",
    f"Authorization: Custom-Scheme {SECRET}",
    f"Authorization: {SECRET}",
    f"{{'Authorization': 'SSWS {SECRET}', 'Accept': 'json'}}",
    f'"password": "{SECRET}"',
    f"bearer {SECRET}",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_credential_shapes_are_redacted_in_any_text(log_stream: io.StringIO, shape: str) -> None:
    logging.getLogger("httpx").warning(shape)
    get_logger("t").warning("as a field", detail=shape)
    text = log_stream.getvalue()
    assert SECRET not in text
    assert text.count(REDACTED) == 2


def test_credential_keys_are_redacted_by_word(log_stream: io.StringIO) -> None:
    keys = ["token", "api_token", "access_token", "Authorization", "X-INFRAHUB-KEY", "password"]
    keys += ["secret", "client_secret", "sealed_token", "apiKey", "OPENAI_API_KEY", "Cookie"]
    get_logger("t").info("keys", **{key: SECRET for key in keys})
    (line,) = lines(log_stream)
    assert all(line[key] == REDACTED for key in keys)


def test_token_counters_stay_visible(log_stream: io.StringIO) -> None:
    counters = ["input_tokens", "output_tokens", "total_tokens", "reasoning_tokens"]
    counters += ["cached_tokens", "max_tokens", "tokens"]
    get_logger("t").info(
        "usage input_tokens=123 output_tokens=45",
        usage={"input_tokens": 123, "output_tokens": 45},
        **dict.fromkeys(counters, 7),
    )
    (line,) = lines(log_stream)
    assert line["event"] == "usage input_tokens=123 output_tokens=45"
    assert line["usage"] == {"input_tokens": 123, "output_tokens": 45}
    assert all(line[key] == 7 for key in counters)


def test_registered_secrets_are_redacted_percent_encoded(log_stream: io.StringIO) -> None:
    secret = "tok/with+odd=chars"
    with secret_scope(secret):
        get_logger("t").info(f"GET /x?t={quote(secret, safe='')} and {quote(secret).lower()}")
        assert scrub(f"ref {quote_plus(secret)}") == f"ref {REDACTED}"
    assert "with" not in log_stream.getvalue()


def test_scrub_data_cleans_a_trace_and_keeps_its_numbers() -> None:
    with secret_scope(TOKEN):
        trace = AttemptTrace(
            attempt=1,
            started_at=1.0,
            finished_at=2.0,
            outcome="failed",
            error_message=f"rejected {TOKEN}",
            steps=[
                Step(
                    kind="tool_call",
                    arguments={"query": TOKEN, "kind": "DcimDevice"},
                    result_excerpt=f'{{"debug_token": "{TOKEN}"}}',
                    error=f"token '{TOKEN}' rejected",
                    input_tokens=12,
                ),
                Step(kind="http_error", error=f"GET /mcp?token={TOKEN}"),
            ],
        )
        cleaned = scrub_data(trace)
    assert TOKEN not in cleaned.model_dump_json()
    assert cleaned.steps[0].arguments == {"query": REDACTED, "kind": "DcimDevice"}
    assert cleaned.steps[0].input_tokens == 12 and cleaned.finished_at == 2.0


@pytest.mark.parametrize("mode", ["beat", "api"])
def test_beat_and_api_processes_redact_every_line(
    mode: str, redis_url: str, secret_key: str, tmp_path: Path
) -> None:
    """In a real process started as ``agentq beat`` (after Celery beat took over logging) or
    ``agentq api`` (under uvicorn), lines from any logger come out redacted."""
    if mode == "beat":
        where = tmp_path / "schedules.yaml"
        where.write_text(
            "reports:\n  - {name: r, interval_seconds: 60, questions: [Which sites],"
            " token_env: AGENTQ_DRIVER_TOKEN}\n"
        )
    else:
        where = Path(str(free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTQ_", "OPENAI_"))}
    env.update(
        AGENTQ_REDIS_URL=redis_url,
        AGENTQ_SECRET_KEY=secret_key,
        AGENTQ_LOG_FORMAT="json",
        AGENTQ_LOG_LEVEL="INFO",
        AGENTQ_DRIVER_TOKEN="driver-schedule-token",
    )
    argv = [sys.executable, "-m", "tests.redaction_driver", mode, str(where), json.dumps(SHAPES)]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    shaped = [line for line in logged if line.get("event") == "shape" or "detail" not in line]
    assert len(shaped) >= 4 * len(SHAPES), done.stderr[-2000:]  # three stdlib loggers, structlog
    assert SECRET not in done.stderr + done.stdout
    assert done.stderr.count(REDACTED) >= 4 * len(SHAPES)


def test_shape_words_let_through_nothing_the_patterns_catch() -> None:
    """``scrub`` skips the three credential-shape patterns when a text has none of their words:
    it must redact exactly what running the patterns on every text redacts, whatever the case
    (re's IGNORECASE folds the long s and the Kelvin sign too), for long and short texts."""
    from agentq import logs

    def every_pattern(text: str) -> str:
        text = logs._AUTHORIZATION.sub(logs._authorization, text)
        text = logs._BEARER.sub(rf"\1 {logs.REDACTED}", text)
        return logs._KEY_VALUE.sub(logs._key_value, text)

    texts = [
        "api_key=abc123",
        "X-API-KEY: abc",
        "PassWord: hunter2",
        "passphrase='open sesame'",
        "Cookie=session123",
        "Authorization: Bearer abc.def",
        "proxy-authorization=Basic Zm9v",
        "bearer abcdef",
        "\u017fecret=abc",  # long s: IGNORECASE matches it as s
        "api_\u212aey=abc",  # Kelvin sign: IGNORECASE matches it as k
        "to\u212aen: xyz",
        "input_tokens",
        "nothing to see here",
        '{"infrahub_key": "k-1"}',
    ]
    texts += [t + " " + "x" * 100 for t in texts]  # past the short-text cache
    for text in texts:
        assert logs.scrub(text) == every_pattern(text), text
