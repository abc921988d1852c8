"""kombu's Redis transport, made to survive a Redis outage and to publish without building a
Redis client per message: the one place agentq changes it.

When the connection to Redis drops, Celery's consumer closes the broker connection and opens a
new one. kombu (5.7.0 here) detaches the old connection's transport from its connection first
(it clears ``transport.client``, to break a reference cycle), and what still runs on the old
channels afterwards (closing a channel puts the messages it took and did not run back in their
queue) reads that attribute for connection parameters or, on Sentinel, the sentinels' addresses:
an ``AttributeError`` ('NoneType' object has no attribute 'hostname', or 'alt'), which is not one
of the connection errors Celery expects. With kombu's acknowledgement emulation on, the worker
process died of it ("Unrecoverable error") on every Redis restart or failover; with it off (as
agentq runs, see ``agentq.celery_app``) the messages are not put back. (The same failure has
been reported upstream for years, e.g. celery/kombu issues 582 and 970.)

Here a transport keeps the connection it belonged to after kombu lets go of it, so what still
runs on the old channels works: the restore puts the messages it took back in their queue. It
also meets pooled connections that died with the outage: here the channel's own pool reconnects
and sends again (redis-py's retry), where kombu's would log a traceback.

``client`` is an attribute of kombu's transport, ``_connparams`` and ``_create_client`` private
methods of its channel; ``tests/test_broker_transport.py`` fails loudly if an upgrade changes
them, or how a closed connection's channels behave.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from agentq.connections import parse_sentinel


class _Retrying:
    """The channel's own (synchronous) pool retries on connection errors."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        if not asynchronous:
            # Publishes and restores go through this pool; after an outage its pooled
            # connections are dead: reconnect and send again rather than fail the first use.
            params.setdefault("retry", Retry(ExponentialBackoff(cap=1.0, base=0.1), 3))
            params.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
        return params


class _OneClientPerPool:
    """One synchronous client per connection pool, where kombu makes a new one for each use.

    kombu's channel builds a ``redis.Redis`` around its pool for every message it publishes
    (``conn_or_acquire``), and building one copies redis-py's table of some 170 response
    callbacks: 6% of a submit's CPU, 3% of a busy worker's. A client is only its pool and that
    table, and is safe to share between threads (each command takes a connection from the pool),
    so the channel keeps the one it made until its pool changes (kombu drops its pools when the
    connection closes)."""

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        client = self.__dict__.get("_agentq_client")
        if client is None or client.connection_pool is not pool:
            client = super()._create_client(asynchronous)  # type: ignore[misc]
            self.__dict__["_agentq_client"] = client
        return client


class _KeepsItsConnection:
    """``client`` (the kombu Connection) stays readable after the connection lets go of it."""

    @property
    def client(self) -> Any:
        return self.__dict__.get("_client") or self.__dict__.get("_kept_client")

    @client.setter
    def client(self, value: Any) -> None:
        self.__dict__["_client"] = value
        if value is not None:
            self.__dict__["_kept_client"] = value


class Channel(_OneClientPerPool, _Retrying, kombu_redis.Channel):  # type: ignore[misc]
    pass


class SentinelChannel(_OneClientPerPool, _Retrying, kombu_redis.SentinelChannel):  # type: ignore[misc]
    pass


class Transport(_KeepsItsConnection, kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


class SentinelTransport(_KeepsItsConnection, kombu_redis.SentinelTransport):  # type: ignore[misc]
    Channel = SentinelChannel


def transport_for(url: str) -> str:
    """The kombu transport (as Celery's ``broker_transport``) for a Redis or Sentinel URL."""
    name = "SentinelTransport" if parse_sentinel(url) else "Transport"
    return f"{__name__}:{name}"
