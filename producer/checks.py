"""What a submission must be before anything is written: question, token, metadata, options.

Each check returns the value as it will be stored (stripped, typed) or raises ``BadRequest`` with
one line a user can act on, naming the setting that sets a limit. The client runs them all before
its one write, so a refused submit leaves nothing behind; the API runs ``check_token`` on every
request's bearer token too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, cast

from agentq.errors import BadRequest
from agentq.jobs import SERVICE_TIERS, ServiceTier
from agentq.prices import load_prices
from agentq.settings import Settings
from agentq.text import printable

MAX_METADATA_DEPTH = 32  # nesting of metadata objects and arrays


def check_token(token: str | None) -> str:
    """The token without surrounding whitespace; BadRequest if it is missing or malformed."""
    if token is None or not token.strip():
        raise BadRequest("no Infrahub token given (set INFRAHUB_API_TOKEN or use --token-file)")
    token = token.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise BadRequest("the Infrahub token contains whitespace or control characters")
    return token


def check_question(question: str | None, max_bytes: int) -> str:
    if question is None or not question.strip():
        raise BadRequest("the question is empty")
    question = question.strip()
    size = len(question.encode())
    if size > max_bytes:
        raise BadRequest(
            f"the question is {size} bytes; the limit is {max_bytes} (AGENTQ_MAX_QUESTION_BYTES)"
        )
    return question


def check_metadata(metadata: dict[str, Any] | None, max_bytes: int) -> dict[str, Any]:
    """The metadata if it is a JSON object within the size limit; BadRequest otherwise."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise BadRequest("metadata must be a JSON object with string keys")
    if _deeper_than(metadata, MAX_METADATA_DEPTH):
        raise BadRequest(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    try:
        size = len(json.dumps(metadata, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        raise BadRequest("metadata must hold only JSON values") from None
    if size > max_bytes:
        raise BadRequest(
            f"the metadata is {size} bytes of JSON; the limit is {max_bytes} "
            "(AGENTQ_MAX_METADATA_BYTES)"
        )
    return metadata


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers deep, found without recursion (the
    JSON encoder and pydantic's serializer recurse, and fail on deep input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_allow_writes(allow_writes: bool, settings: Settings) -> bool:
    if allow_writes and not settings.allow_write_tools:
        raise BadRequest(
            "write tools are not allowed in this deployment (AGENTQ_ALLOW_WRITE_TOOLS is off)"
        )
    return allow_writes


def check_deadline(deadline: float | None, settings: Settings) -> float | None:
    if deadline is None:
        return None
    limit = settings.max_deadline_seconds
    if not 1 <= deadline <= limit:
        raise BadRequest(
            f"the deadline must be between 1 and {limit:g} seconds (AGENTQ_MAX_DEADLINE_SECONDS)"
        )
    return float(deadline)


def check_question_id(question_id: str | None) -> str | None:
    """A question's id (matches it across a report's runs): 1 to 200 printable characters."""
    if question_id is None:
        return None
    if not isinstance(question_id, str) or not question_id.strip():
        raise BadRequest("a question id must be a non-empty string")
    if len(question_id) > 200 or printable(question_id) != question_id or "\n" in question_id:
        raise BadRequest("a question id must be one line of at most 200 printable characters")
    return question_id.strip()


def check_question_ids(ids: Iterable[str | None]) -> list[str | None]:
    """Each question's id checked, and no id given twice (a diff could not tell them apart)."""
    checked: list[str | None] = []
    seen: set[str] = set()
    for number, raw in enumerate(ids, start=1):
        try:
            question_id = check_question_id(raw)
        except BadRequest as exc:
            raise BadRequest(f"question {number}: {exc}") from None
        if question_id is not None and question_id in seen:
            raise BadRequest(f"question {number}: the id {question_id!r} is given to another too")
        if question_id is not None:
            seen.add(question_id)
        checked.append(question_id)
    return checked


def check_service_tier(tier: str | None) -> ServiceTier | None:
    """The tier asked of the model, one of ``SERVICE_TIERS`` (None: the deployment's)."""
    if tier is None:
        return None
    tier = tier.strip().lower()
    if tier not in SERVICE_TIERS:
        raise BadRequest(f"service_tier must be one of {', '.join(SERVICE_TIERS)}")
    return cast(ServiceTier, tier)


def check_max_cost(max_cost_usd: float | None, settings: Settings) -> float | None:
    """A batch's budget in dollars: more than 0, and only where every model the workers may use
    (AGENTQ_MODEL, AGENTQ_MODEL_FALLBACKS) has a price, since calls without one count nothing
    against it."""
    if max_cost_usd is None:
        return None
    if not math.isfinite(max_cost_usd) or max_cost_usd <= 0:
        raise BadRequest("max_cost_usd must be a number of dollars above 0")
    prices = load_prices(settings.prices_file)
    for model in settings.models:
        if not prices.knows(model):
            raise BadRequest(
                f"max_cost_usd needs the price of model {model}, which the price table does "
                "not list (add it with AGENTQ_PRICES_FILE)"
            )
    return float(max_cost_usd)
