"""kombu's Redis transport, made to survive a Redis outage: the one place agentq changes it.

When the connection to Redis drops, Celery's consumer closes the broker connection and opens a
new one. kombu (5.7.0 here) detaches the old connection's transport first, and what still runs
on its channels afterwards (closing a channel restores the messages it took; a job that ends
acknowledges its message) asks that transport for connection parameters it no longer has: an
``AttributeError`` ('NoneType' object has no attribute 'hostname'), which is not one of the
connection errors Celery expects, so the worker process died ("Unrecoverable error") on every
Redis restart, or logged "Error on stopping Hub" with a traceback. (The same failure has been
reported upstream for years, e.g. celery/kombu issues 582 and 970.)

Its acknowledgements also meet pooled connections that died with the outage; here they reconnect
and are sent again (redis-py's retry), where kombu's would log a traceback and leave the message
to be delivered again.

And here a channel keeps the connection parameters it was opened with, and uses them once its
transport is detached: the restore and the late acknowledgements reach Redis as they should
(once it is back: a job's end is recorded first, waiting out the outage, and only then is its
message acknowledged), so nothing is left in kombu's unacked hash to be delivered again an hour
later. A channel that never connected raises ``redis.ConnectionError``, which Celery and kombu
treat as the broker being away.

``_connparams`` is a private method of kombu's channel; ``tests/test_broker_transport.py``
fails loudly if an upgrade renames it or changes how a detached transport behaves.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from agentq.connections import parse_sentinel


class _Detached:
    """Remembers the connection parameters while the transport has them."""

    _kept: dict[bool, dict[str, Any]]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        kept = self.__dict__.setdefault("_kept", {})
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            if asynchronous not in kept:
                raise redis.ConnectionError("the broker connection was closed")
            return dict(kept[asynchronous])
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        if not asynchronous:
            # Acknowledgements and restores go through this pool; after an outage its pooled
            # connections are dead: reconnect and send again rather than fail the first use.
            params.setdefault("retry", Retry(ExponentialBackoff(cap=1.0, base=0.1), 3))
            params.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
        kept[asynchronous] = dict(params)
        return params


class Channel(_Detached, kombu_redis.Channel):  # type: ignore[misc]
    pass


class SentinelChannel(_Detached, kombu_redis.SentinelChannel):  # type: ignore[misc]
    pass


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    Channel = SentinelChannel


def transport_for(url: str) -> str:
    """The kombu transport (as Celery's ``broker_transport``) for a Redis or Sentinel URL."""
    name = "SentinelTransport" if parse_sentinel(url) else "Transport"
    return f"{__name__}:{name}"
