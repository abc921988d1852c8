"""Logging through structlog, with secrets scrubbed from every line whatever logged it.

Our own code, Celery, httpx, the OpenAI client and the Agents SDK all log through the standard
library; one handler renders every record with structlog (JSON off a TTY, console on one) after a
redaction processor. Every process (worker, API, beat, CLI) installs it with ``configure_logging``.
Redaction works three ways, because a token can hide anywhere:
- values under credential keys (``token``, ``api_token``, ``authorization``, ``x-infrahub-key``,
  ``password`` ...) are replaced; keys are matched by word, so counters such as ``input_tokens``
  or ``max_tokens`` stay visible;
- credential shapes in any string are replaced: ``Authorization: <scheme> <value>`` for any
  scheme, ``Bearer <value>``, and ``key=value`` / ``key: value`` / ``"key": "value"`` for those
  credential keys (``?token=...``, ``api_token=...``, ``X-INFRAHUB-KEY: ...``);
- every token a worker currently holds is registered (``secret_scope``) and replaced wherever it
  appears, raw or percent-encoded, in any field, message or rendered traceback.
The same ``scrub``/``scrub_data`` clean what a job stores (answer, error, trace), since an MCP
server or Infrahub may echo the token back in an error text or a tool result.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar
from urllib.parse import quote, quote_plus

import structlog
from pydantic import BaseModel

REDACTED = "[REDACTED]"
T = TypeVar("T")

# A key is a credential when its last word is one of these (``api_token``, ``X-Auth-Token``,
# ``client_secret``), when it contains one of _SECRET_ANYWHERE, or when it ends in one of
# _SECRET_PAIRS (``X-INFRAHUB-KEY``, ``OPENAI_API_KEY``).
# By word, not by substring: ``input_tokens`` and ``max_tokens`` are counters, not secrets.
_SECRET_LAST_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "authorization", "cookie", "apikey"}
)
_SECRET_ANYWHERE = frozenset({"sealed", "password", "passwd", "authorization", "credentials"})
_SECRET_PAIRS = frozenset({"api_key", "infrahub_key", "secret_key", "private_key", "access_key"})
_KEY_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# The credential keys as they appear inside text (query strings, headers, JSON in a message).
_KEY_IN_TEXT = (
    r"(?:[A-Za-z0-9]+[_-])*(?:token|secret|password|passwd|passphrase|cookie"
    r"|(?:api|infrahub|private|access|secret)[_-]?key)"
)
_KEY_VALUE = re.compile(
    rf"(?i)(?<![A-Za-z0-9_-])({_KEY_IN_TEXT})(\\?[\"']?\s*[:=]\s*\\?[\"']?)([^\s\"'&,;}}\])\\]+)"
)
# ``Authorization: <scheme> <value>``: a known scheme is kept, the rest of the value goes.
_SCHEMES = (
    "basic|bearer|token|digest|negotiate|ntlm|apikey|key|hoba|mutual|oauth|mac|dpop|jwt|ssws"
    "|aws4-hmac-sha256"
)
_AUTHORIZATION = re.compile(
    r"(?i)(\b(?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    rf"(?:({_SCHEMES})\s+)?([^\"'\n\r,;}}\]\\]*[^\s\"',;}}\]\\])"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED\])[^\s\"',;]+")
# A word each of the three patterns above must contain (lower case).
_SHAPE_WORDS = (
    "token",
    "secret",
    "passw",
    "passphrase",
    "cookie",
    "key",
    "authorization",
    "bearer",
)
_QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai.agents", "mcp")

_active_lock = threading.Lock()
_active: Counter[str] = Counter()
_ordered: tuple[str, ...] = ()  # _active's secrets, longest first: the order scrub replaces them
# A token cut by an excerpt's end must still be found whole: scrub this much past the cut.
EXCERPT_MARGIN = 4096


def _forms(secret: str) -> set[str]:
    """The secret and the encodings a server might echo it in (query strings, form bodies)."""
    forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret, safe="")}
    forms |= {re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return forms


@contextmanager
def secret_scope(*secrets: str) -> Iterator[None]:
    """Scrub ``secrets`` from every log line emitted anywhere in this process while inside."""
    global _ordered
    kept = [form for s in secrets if s for form in _forms(s)]
    with _active_lock:
        _active.update(kept)
        _ordered = tuple(sorted(_active, key=len, reverse=True))
    try:
        yield
    finally:
        with _active_lock:
            _active.subtract(kept)
            for secret in kept:
                if _active[secret] <= 0:
                    del _active[secret]
            _ordered = tuple(sorted(_active, key=len, reverse=True))


def _authorization(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{REDACTED}"


def _key_value(match: re.Match[str]) -> str:
    if match.group(3).startswith("[REDACTED"):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def scrub(text: str) -> str:
    """``text`` with credential shapes and every registered secret replaced."""
    for secret in _ordered:  # a tuple, replaced whole: no lock needed to read it
        if secret in text:
            text = text.replace(secret, REDACTED)
    if len(text) <= _SHORT:
        return _short_without_shapes(text)
    return _without_shapes(text)


def _without_shapes(text: str) -> str:
    # Each pattern needs one of _SHAPE_WORDS: most texts (a trace's keys, numbers, names) have
    # none, and skip the three scans. casefold() folds at least what re's IGNORECASE does.
    folded = text.casefold()
    if not any(word in folded for word in _SHAPE_WORDS):
        return text
    text = _AUTHORIZATION.sub(_authorization, text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _KEY_VALUE.sub(_key_value, text)


# A stored trace repeats the same short texts (its keys, kinds, tool and model names) in every
# job: their shapes are looked up once. Secrets are not in this cache: they are replaced first.
_SHORT = 64
_short_without_shapes = functools.lru_cache(maxsize=4096)(_without_shapes)


def scrubbed_excerpt(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, scrubbed before the cut (so a token echoed
    across it leaves no prefix) but without scrubbing all of a large text."""
    return scrub(text[: limit + EXCERPT_MARGIN])[:limit]


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a value stored under ``key`` is a credential (``api_token`` yes, ``input_tokens``
    no)."""
    words = [w.lower() for w in _KEY_WORD.findall(key)]
    if not words:
        return False
    return (
        words[-1] in _SECRET_LAST_WORDS
        or not _SECRET_ANYWHERE.isdisjoint(words)
        or "_".join(words[-2:]) in _SECRET_PAIRS
    )


def _redact_value(key: str | None, value: Any) -> Any:
    if key is not None and is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    return value


def scrub_data(value: T) -> T:
    """``value`` (text, JSON-like data or a pydantic model) with every credential removed, as a
    log line would have it; for what a job stores (its answer, error and trace)."""
    if isinstance(value, BaseModel):
        cleaned = _redact_value(None, value.model_dump(mode="python"))
        return type(value).model_validate(cleaned)
    result: T = _redact_value(None, value)
    return result


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
