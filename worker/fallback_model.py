"""A model that hands a call to the next model of ``AGENTQ_MODEL_FALLBACKS`` when one keeps failing.

The OpenAI client already retries a failed request (``AGENTQ_MODEL_MAX_RETRIES``, with backoff);
what still fails after that is an outage of that model, and the job's own retry would meet it
again. So, when a call fails transiently (5xx, a timeout, the endpoint unreachable, a rate limit
that outlasted its retries), the same call goes to the next model in the list, and the rest of
the attempt stays with the model that answered. A failure that is not transient (a refused
request, a bad key) is raised as it is: another model would not cure it.

The model that answered each call is put on the job's context for its trace step
(``worker.tracing``), so the trace and the report say which model did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from agents import Model, ModelResponse
from agents.items import TResponseStreamEvent

from agentq.logs import get_logger
from worker.failures import CURRENT_JOB, classify

log = get_logger(__name__)


def falls_back(error: BaseException) -> bool:
    """Whether a failed model call should go to the next model: transient, from the endpoint."""
    if not isinstance(error, openai.APIError):
        return False
    return classify(error).transient


class FallbackModel(Model):
    """``models`` (name, model) in order; each attempt starts with the first."""

    def __init__(self, models: Sequence[tuple[str, Model]]) -> None:
        self._models = list(models)
        self._current = 0

    @property
    def name(self) -> str:
        return self._models[self._current][0]

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        while True:
            name, model = self._models[self._current]
            job = CURRENT_JOB.get()
            if job is not None:
                job.model = name
            try:
                return await model.get_response(*args, **kwargs)
            except Exception as exc:
                if self._current + 1 >= len(self._models) or not falls_back(exc):
                    raise
                self._current += 1
                log.warning(
                    "model kept failing; trying the next model",
                    failed_model=name,
                    next_model=self._models[self._current][0],
                    cause=type(exc).__name__,
                )
                if job is not None:
                    job.http_error("model", name, f"failed over to {self.name}", True)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        # agentq runs agents with ``Runner.run``, never streamed: no fallback needed here.
        return self._models[self._current][1].stream_response(*args, **kwargs)
