"""The OpenAI client agentq's models call: ``create`` without openai's parameter walk.

openai's ``chat.completions.create`` and ``responses.create`` pass every request's parameters
through ``async_maybe_transform``, which walks them against their ``TypedDict`` annotations
(resolving forward references and trying each member of every union) to rename aliased keys and
encode files. The Agents SDK's requests are plain JSON already, and carry the whole conversation
and every tool's schema on every turn, so the walk changes nothing and grows with the run: it was
the largest single cost in a worker (about 4 ms of CPU in a 23 ms job, measured side by side in
the benchmark's one-process run).

``ModelClient`` is an ``AsyncOpenAI`` (the SDK checks the type, the base URL and the options)
whose two ``create`` methods send the parameters as given, through the client's own ``_post``:
the same retries, headers, timeouts, authentication and response parsing. What they do not
handle (streams, a ``response_format`` given as a class, parameters that are not JSON) goes to
openai's own ``create``.

This module is the one place that uses openai's private parts: ``openai._resource``'s
``AsyncAPIResource`` (its ``_post`` and ``_client``) and ``openai._base_client``'s
``make_request_options``, copied in shape from openai's ``create`` (3.57).
``tests/test_model_client.py`` sends the same agent runs through this client and a stock
``AsyncOpenAI`` and fails if a single request differs (method, path, headers or body), on both
model APIs: an openai upgrade that changes what ``create`` sends is found there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any

from openai import AsyncOpenAI, NotGiven, Omit, not_given
from openai._base_client import make_request_options
from openai._resource import AsyncAPIResource
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from worker.failures import CURRENT_JOB

# The versions this module was checked against (tests/test_model_client.py).
CHECKED_VERSIONS = {"openai": "3.57."}

_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")
_JSON_LEAVES = (str, int, float, bool, type(None))


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is JSON as Python builds it (dicts with string keys, lists, leaves):
    what the walk would leave unchanged."""
    if isinstance(value, _JSON_LEAVES):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain_json(v) for v in value)
    return False


def _as_given(params: dict[str, Any]) -> tuple[dict[str, Any], Any] | None:
    """The request body (parameters given, in order) and the request options, or None when
    openai's own ``create`` must send it (a stream, or anything but plain JSON)."""
    if params.get("stream") is True:
        return None
    body = {
        key: value
        for key, value in params.items()
        if key not in _OPTIONS and not isinstance(value, Omit | NotGiven)
    }
    if not _plain_json(body):
        return None
    options = make_request_options(
        extra_headers=params.get("extra_headers"),
        extra_query=params.get("extra_query"),
        extra_body=params.get("extra_body"),
        timeout=params.get("timeout", not_given),
        security={"bearer_auth": True},
    )
    return body, options


async def _create(
    resource: AsyncAPIResource,
    path: str,
    cast_to: type[Any],
    params: dict[str, Any],
    stock: Callable[..., Awaitable[Any]],
) -> Any:
    """``resource``'s ``create``: the parameters sent as given to ``path``, or by openai's own
    ``create`` (``stock``) when they cannot be."""
    request = _as_given(params)
    if request is None:
        return await stock(**params)
    body, options = request
    response = await resource._post(path, body=body, options=options, cast_to=cast_to)
    note_served_tier(response)
    return response


def note_served_tier(response: Any) -> None:
    """Tell the job's trace which tier served this call: the response says (the Agents SDK's
    ``ModelResponse`` does not carry it), and flex may have fallen back to default."""
    job = CURRENT_JOB.get()
    if job is not None:
        tier = getattr(response, "service_tier", None)
        job.served_tier = str(tier) if tier else None


class _Completions(AsyncCompletions):
    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        return await _create(self, "/chat/completions", ChatCompletion, params, super().create)


class _Chat(AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return _Completions(self._client)


class _Responses(AsyncResponses):
    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        return await _create(self, "/responses", Response, params, super().create)


class ModelClient(AsyncOpenAI):
    """``AsyncOpenAI`` whose chat completions and responses are sent as given (see above)."""

    @cached_property
    def chat(self) -> AsyncChat:
        return _Chat(self)

    @cached_property
    def responses(self) -> AsyncResponses:
        return _Responses(self)
