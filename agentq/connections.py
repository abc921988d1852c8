"""Connecting to Redis, plainly or through Redis Sentinel, and saying clearly when it is down.

``AGENTQ_REDIS_URL`` is either a Redis URL (``redis://``, ``rediss://``, ``unix://``) or, for a
Sentinel-managed Redis, Celery's form: ``sentinel://[:password@]host:port[/db];sentinel://host2:port``
with the master's name in ``AGENTQ_REDIS_SENTINEL_MASTER``. Every part of agentq (job store,
Celery broker, shared limiters, celery-redbeat) connects through here, so both forms work
everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from agentq.errors import ServiceUnavailable


@dataclass(frozen=True)
class SentinelURL:
    hosts: list[tuple[str, int]]
    password: str | None
    db: int


def parse_sentinel(url: str) -> SentinelURL | None:
    """The sentinels, password and database of a ``sentinel://`` URL (None for other URLs)."""
    if not url.startswith("sentinel://"):
        return None
    hosts: list[tuple[str, int]] = []
    password: str | None = None
    db = 0
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError("each part of a sentinel URL is sentinel://host:port")
        hosts.append((parts.hostname, parts.port or 26379))
        password = password or parts.password
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
    return SentinelURL(hosts, password, db)


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for error messages and logs."""
    return ";".join(_redact_one(part) for part in url.split(";"))


def _redact_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _options(timeout: float) -> dict[str, Any]:
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout}


def connect(url: str, timeout: float = 5.0, sentinel_master: str = "mymaster") -> redis.Redis:
    """A Redis client that answers with str and fails fast when Redis is down."""
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return redis.Redis.from_url(
            url, decode_responses=True, health_check_interval=30, **_options(timeout)
        )
    watchers = Sentinel(  # type: ignore[no-untyped-call]
        sentinel.hosts, sentinel_kwargs={"password": sentinel.password, **_options(timeout)}
    )
    client: redis.Redis = watchers.master_for(  # type: ignore[no-untyped-call]
        sentinel_master,
        decode_responses=True,
        db=sentinel.db,
        password=sentinel.password,
        **_options(timeout),
    )
    return client


def connect_async(
    url: str, timeout: float = 5.0, sentinel_master: str = "mymaster"
) -> aioredis.Redis:
    """The asyncio twin of ``connect`` (bytes replies), for the worker's shared limiters."""
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return aioredis.Redis.from_url(url, **_options(timeout))
    watchers = AsyncSentinel(  # type: ignore[no-untyped-call]
        sentinel.hosts, sentinel_kwargs={"password": sentinel.password, **_options(timeout)}
    )
    client: aioredis.Redis = watchers.master_for(
        sentinel_master, db=sentinel.db, password=sentinel.password, **_options(timeout)
    )
    return client


def celery_transport_options(url: str, sentinel_master: str) -> dict[str, Any]:
    """What kombu's Redis transport needs besides the URL (the master's name for Sentinel)."""
    return {"master_name": sentinel_master} if parse_sentinel(url) else {}


def redbeat_options(url: str, sentinel_master: str) -> dict[str, Any]:
    """celery-redbeat's settings for the same Redis (it names Sentinel URLs its own way)."""
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return {"redbeat_redis_url": url}
    return {
        "redbeat_redis_url": "redis-sentinel://",
        "redbeat_redis_options": {
            "sentinels": sentinel.hosts,
            "service_name": sentinel_master,
            "password": sentinel.password,
            "db": sentinel.db,
            "socket_timeout": 5,
        },
    }


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Turn a Redis connection failure into one clear ServiceUnavailable line."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise ServiceUnavailable(f"cannot reach Redis at {redact_url(url)}: {reason}") from None
