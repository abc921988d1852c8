"""Idempotency keys: a submit repeated with the same key makes its job or batch only once.

A key is scoped to the token that sent it (its owner fingerprint) and to what it submits (a job
or a batch), and kept 24 hours (never longer than the job records: ``job_ttl_seconds``). Redis
holds ``agentq:idem:<owner>:<kind>:<sha256 of the key>`` -> ``{"id", "digest", "at"}``: the id
the first submit made, a digest of its checked request and when it claimed the key.

A submit claims the key (``SET NX``) with the id it is about to create, before it spends any
quota, then creates the job or batch; if that fails, it releases the key (only if the key still
holds its own claim), so a failed submit leaves nothing behind. A submit that finds the key taken
with the same digest answers with the first id, once that job or batch exists (the first submit
may still be writing it); with another digest, ``IdempotencyConflict``. A claim whose record
never appeared (its process died between claim and write) is taken over after
``STALE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis

from agentq.connections import redis_errors
from agentq.errors import AgentqError, BadRequest, ErrorCode, IdempotencyConflict
from agentq.store import KEY_PREFIX

Kind = Literal["job", "batch"]
TTL_SECONDS = 24 * 60 * 60
MAX_KEY_CHARS = 255
# A claim older than this whose job or batch does not exist was left by a submit that died
# between its claim and its write (a live one writes within seconds): it is taken over.
STALE_SECONDS = 60.0
WAIT_SECONDS = 10.0  # how long a repeat waits for the first submit's write


def check_idempotency_key(key: str) -> str:
    """The key if it is 1 to 255 printable ASCII characters; BadRequest otherwise."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise BadRequest(f"the idempotency key must be 1 to {MAX_KEY_CHARS} characters")
    if not all(" " <= char <= "~" for char in key):
        raise BadRequest("the idempotency key must be printable ASCII characters only")
    return key


def request_digest(params: Mapping[str, Any]) -> str:
    """A digest of a submit's checked parameters: equal requests have equal digests."""
    canonical = json.dumps(
        params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotency_key(owner: str, kind: Kind, key: str) -> str:
    """The Redis key of ``key`` sent by ``owner`` for a ``kind`` (the key itself only hashed:
    it is the client's text, of any printable shape)."""
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return f"{KEY_PREFIX}:idem:{owner}:{kind}:{digest}"


@dataclass(frozen=True)
class Claimed:
    """The key is ours: create ``id``, or ``release`` the key if that fails."""

    id: str


@dataclass(frozen=True)
class Existing:
    """The key was claimed first, for the same request, by the submit that made ``id``."""

    id: str
    claimed_at: float


class IdempotencyStore:
    """Claims, reads and releases idempotency keys; each expires after ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, url: str = "redis", ttl: int = TTL_SECONDS) -> None:
        self._redis = client
        self._url = url
        self._ttl = max(1, min(ttl, TTL_SECONDS))

    def claim(
        self, owner: str, kind: Kind, key: str, new_id: str, digest: str
    ) -> Claimed | Existing:
        """Claim ``key`` for ``new_id``; or the id it was claimed for first, with the same
        ``digest``. IdempotencyConflict if it was claimed for another request."""
        name = idempotency_key(owner, kind, key)
        value = json.dumps({"id": new_id, "digest": digest, "at": time.time()})
        with redis_errors(self._url):
            while True:
                if self._redis.set(name, value, nx=True, ex=self._ttl):
                    return Claimed(new_id)
                raw = self._redis.get(name)
                if raw is not None:  # else released or expired just now: claim it again
                    break
        held = json.loads(raw)
        if held.get("digest") != digest:
            raise IdempotencyConflict(
                f"the idempotency key was already used for a different {kind}: "
                "send the same request again, or use a new key"
            )
        return Existing(str(held["id"]), float(held.get("at", 0.0)))

    def release(self, owner: str, kind: Kind, key: str, claimed_id: str) -> bool:
        """Delete ``key`` if it still holds the claim for ``claimed_id``; whether it did."""
        name = idempotency_key(owner, kind, key)
        with redis_errors(self._url), self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(name)  # type: ignore[no-untyped-call]
                raw = pipe.get(name)
                if raw is None or json.loads(raw).get("id") != claimed_id:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.delete(name)
                pipe.execute()
            except redis.WatchError:  # changed under us: no longer our claim
                return False
        return True

    def settle(
        self,
        owner: str,
        kind: Kind,
        key: str,
        new_id: str,
        digest: str,
        exists: Callable[[str], bool],
        timeout: float = WAIT_SECONDS,
    ) -> Claimed | Existing:
        """Claim ``key`` for ``new_id``, or the first submit's id once ``exists`` says its job
        or batch has been written. A first submit that fails releases the key, which is then
        claimed here; one that does not write within ``timeout`` seconds is a transient
        error (503, CLI exit 3: try again)."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            outcome = self.claim(owner, kind, key, new_id, digest)
            if isinstance(outcome, Claimed):
                return outcome
            with redis_errors(self._url):
                if exists(outcome.id):
                    return outcome
            if time.time() - outcome.claimed_at > STALE_SECONDS:
                self.release(owner, kind, key, outcome.id)
                continue
            if time.monotonic() >= deadline:
                raise AgentqError(
                    f"the first submit with this idempotency key is still being written "
                    f"after {timeout:g}s; try again",
                    code=ErrorCode.SERVICE_UNAVAILABLE,
                    retry_after=1.0,
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


__all__ = [
    "Claimed",
    "Existing",
    "IdempotencyStore",
    "check_idempotency_key",
    "idempotency_key",
    "request_digest",
]
