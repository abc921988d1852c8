"""Logging through structlog, with secrets scrubbed from every line whatever logged it.

Our own code, Celery, httpx, the OpenAI client and the Agents SDK all log through the standard
library; one handler renders every record with structlog (JSON off a TTY, console on one) after a
redaction processor. Redaction works three ways, because a token can hide anywhere:
- values under sensitive keys (``token``, ``authorization``, ``api_key`` ...) are replaced;
- ``Bearer <anything>`` in any string is replaced;
- every token a worker currently holds is registered (``secret_scope``) and replaced wherever it
  appears, in any field, message or rendered traceback.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
_SENSITIVE_KEY = re.compile(
    r"(token|authorization|secret|api[_-]?key|password|passwd|cookie|sealed)", re.IGNORECASE
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai.agents", "mcp")

_active_lock = threading.Lock()
_active: Counter[str] = Counter()


@contextmanager
def secret_scope(*secrets: str) -> Iterator[None]:
    """Scrub ``secrets`` from every log line emitted anywhere in this process while inside."""
    kept = [s for s in secrets if s]
    with _active_lock:
        _active.update(kept)
    try:
        yield
    finally:
        with _active_lock:
            _active.subtract(kept)
            for secret in kept:
                if _active[secret] <= 0:
                    del _active[secret]


def scrub(text: str) -> str:
    """``text`` with bearer credentials and every registered secret replaced."""
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    with _active_lock:
        secrets = list(_active)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(key: str | None, value: Any) -> Any:
    if key is not None and _SENSITIVE_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove tokens and Authorization headers, whatever the key."""
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = _redact_value(None, event_dict[key])
        else:
            event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every log record in the process through structlog and the redaction processor."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *pre_chain,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
