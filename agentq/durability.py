"""Durable acknowledgements: what a user is told has happened is on disk before the answer.

Redis acknowledges a write once it is in memory; with ``appendfsync everysec`` (Redis's and most
deployments' default) the append-only file reaches the disk up to a second or two later, so a
Redis crash in between loses writes that were already acknowledged: a submitted job whose id the
user holds would then read "not found", a cancelled job would run, a finished one would run again.
So the writes that answer a user (a submit or batch submit, a cancel, a job's end) are confirmed:

- ``WAITAOF`` (Redis >= 7.2 with ``appendonly yes``): after the write, wait until the append-only
  file holding it is fsynced locally and, on a Sentinel deployment with replicas, on one replica
  too (a failover then promotes a replica that has it). With ``everysec`` that wait is about a
  second (the next fsync; measured in ``make bench``); with ``always`` it returns at once.
- Otherwise only ``appendfsync always`` makes a write durable before its acknowledgement, so
  that is what the deployment must run (the compose file does).

``AGENTQ_DURABLE_WRITES`` chooses: ``auto`` (the default) uses WAITAOF where it can and otherwise
trusts the server's configuration, warning once when it is not ``always``; ``on`` refuses any
such write (before writing anything) when neither is there; ``off`` never waits.

WAITAOF waits for the writes of the connection it is sent on, and redis-py hands each command
and pipeline a pooled connection of its own; so the confirmation sends a tiny write of its own
(a fence counter) and WAITAOF together, on one connection. The append-only file is one ordered
log: once the fence is on disk, so is every write acknowledged before it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from agentq.connections import parse_sentinel, redact_url, redis_errors
from agentq.errors import ServiceUnavailable
from agentq.logs import get_logger

log = get_logger(__name__)

Mode = Literal["auto", "on", "off"]
FENCE_KEY = "agentq:durable:fence"
PROBE_SECONDS = 60.0  # how long what the server runs is trusted before it is read again
WARN_EVERY_SECONDS = 300.0


@dataclass(frozen=True)
class Persistence:
    """What a Redis server does to keep writes, as read from it."""

    version: tuple[int, ...]
    aof: bool
    appendfsync: str | None  # None where CONFIG GET is refused (managed services)
    replicas: int

    @property
    def has_waitaof(self) -> bool:
        return self.version >= (7, 2)

    @property
    def fsync_always(self) -> bool:
        return self.aof and self.appendfsync == "always"


def read_persistence(client: redis.Redis) -> Persistence:
    server = client.info("server")
    persistence = client.info("persistence")
    replication = client.info("replication")
    version = tuple(int(part) for part in str(server.get("redis_version", "0")).split(".")[:3])
    try:
        appendfsync = client.config_get("appendfsync").get("appendfsync")
    except redis.ResponseError:
        appendfsync = None
    return Persistence(
        version=version,
        aof=bool(int(persistence.get("aof_enabled", 0))),
        appendfsync=str(appendfsync) if appendfsync is not None else None,
        replicas=int(replication.get("connected_slaves", 0)),
    )


class DurableWrites:
    """``check`` before a write that answers a user, ``confirm`` after it."""

    def __init__(self, client: redis.Redis, mode: Mode, timeout: float, url: str) -> None:
        self._redis = client
        self._mode = mode
        self._timeout_ms = max(1, int(timeout * 1000))
        self._url = url
        self._sentinel = parse_sentinel(url) is not None
        self._lock = threading.Lock()
        self._known: tuple[float, Persistence] | None = None
        self._warned = 0.0

    def plan(self) -> Literal["off", "waitaof", "always", "none"]:
        """How writes are made durable here now (reads the server at most once a minute)."""
        if self._mode == "off":
            return "off"
        server = self._server()
        if server.has_waitaof and server.aof:
            return "waitaof"
        if server.fsync_always:
            return "always"
        return "none"

    def check(self) -> None:
        """Refuse, before anything is written, a write that cannot be made durable (``on``)."""
        if self.plan() != "none":
            return
        server = self._server()
        setup = (
            f"Redis {'.'.join(map(str, server.version))}, appendonly "
            f"{'yes' if server.aof else 'no'}, appendfsync {server.appendfsync or 'unknown'}"
        )
        if self._mode == "on":
            raise ServiceUnavailable(
                f"AGENTQ_DURABLE_WRITES=on, but Redis at {redact_url(self._url)} cannot make a "
                f"write durable ({setup}): run it with appendonly yes and appendfsync always, "
                "or use Redis 7.2+ with appendonly yes"
            )
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS:
            self._warned = now
            log.warning(
                "acknowledged writes can be lost if Redis crashes: run it with appendonly yes "
                "and appendfsync always, or Redis 7.2+ with appendonly yes",
                redis=setup,
            )

    def confirm(self) -> None:
        """Wait until what this process wrote so far is on disk (and on a replica)."""
        with redis_errors(self._url):
            pipe = self._redis.pipeline(transaction=False)
            replicas = self.fence(pipe)
            if replicas is None:
                return
            _fence, answer = pipe.execute()
        self.confirmed(answer, replicas)

    def fence(self, pipe: redis.client.Pipeline) -> int | None:
        """Queue the confirmation at the end of ``pipe`` (the writes before it on the same
        connection are what it covers); returns how many replicas it asks for, or None if this
        setup confirms nothing. The pipeline's last answer then goes to ``confirmed``, with
        that number."""
        if self.plan() != "waitaof":
            return None
        # One behind Sentinel when the primary has a replica.
        replicas = 1 if self._sentinel and self._server().replicas > 0 else 0
        pipe.incr(FENCE_KEY)
        pipe.execute_command("WAITAOF", 1, replicas, self._timeout_ms)  # type: ignore[no-untyped-call]
        return replicas

    def confirmed(self, answer: Any, replicas: int) -> None:
        """Raise unless WAITAOF's ``answer`` says the write is on disk; note a missing replica
        (of the ``replicas`` its ``fence`` asked for)."""
        local, copies = answer
        if int(local) < 1:
            raise ServiceUnavailable(
                f"Redis at {redact_url(self._url)} did not confirm the write on disk within "
                f"{self._timeout_ms / 1000:g}s"
            )
        if int(copies) < replicas:
            # The replica may be gone (a failover promoted it): look again before the next one.
            self._known = None
            log.warning("no replica confirmed the write on disk in time; kept locally only")

    def _server(self) -> Persistence:
        now = time.monotonic()
        known = self._known
        if known is not None and now - known[0] < PROBE_SECONDS:
            return known[1]
        with self._lock, redis_errors(self._url):
            server = read_persistence(self._redis)
        self._known = (now, server)
        return server
