"""Where a job's Celery message is: the one place agentq reads kombu's Redis storage.

To tell a lost message from a waiting one, the worker's housekeeping must see what the broker
holds, and kombu has no API for that. Its Redis transport keeps a queue's messages in a list
named after the queue, each a JSON envelope whose ``headers.id`` is the task id (agentq sends
every job with its job id as task id). That name and that shape are kombu's own
(``kombu.transport.redis.Channel``); ``tests/test_broker_state.py`` fails loudly if an upgrade
changes them. A message a consumer took is in no Redis key (``agentq.celery_app`` turns kombu's
acknowledgement emulation off): its job is claimed at once, or the message is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis


def _task_id(envelope: Any) -> str | None:
    if isinstance(envelope, dict):
        headers = envelope.get("headers")
        if isinstance(headers, dict) and isinstance(headers.get("id"), str):
            return str(headers["id"])
    return None


def waiting_ids(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    """The task ids of the messages waiting in ``queues`` (not yet taken by any consumer)."""
    pipe = client.pipeline(transaction=False)
    names = sorted(set(queues))
    for queue in names:
        pipe.lrange(queue, 0, -1)
    found: set[str] = set()
    for raws in pipe.execute() if names else []:
        for raw in raws:
            try:
                task_id = _task_id(json.loads(raw))
            except ValueError:
                continue
            if task_id:
                found.add(task_id)
    return found
