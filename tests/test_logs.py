"""Redaction: no token reaches a log line, whatever logged it and however."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agentq.logs import REDACTED, configure_logging, get_logger, secret_scope

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
