"""Sealing users' Infrahub tokens, and telling owners apart without storing their tokens.

A token is sealed (Fernet: AES-CBC + HMAC) by the producer before it enters a Celery message, and
unsealed by the worker only to open the MCP session. A job records an *owner fingerprint*, a keyed
HMAC of the token: reading a job needs the same token, yet Redis never holds anything from which
the token could be recovered or even brute-forced without the secret key.

``AGENTQ_SECRET_KEY`` may list several keys, newest first: the newest seals, all of them unseal
and all of them are tried when matching a fingerprint, so keys can be rotated without losing jobs;
``agentq reseal`` re-encrypts waiting tokens under the newest key so the old one can be dropped.

A sealed token carries the time it was sealed, and no longer opens after
``AGENTQ_SEALED_TOKEN_TTL_SECONDS``: a copy taken from Redis (a backup, a dump) is useless later
even to someone who also has the key. Resealing keeps the original time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agentq.errors import AgentqError, ConfigError, ErrorCode

_FINGERPRINT_CONTEXT = b"agentq owner fingerprint v1"


def generate_key() -> str:
    """A new random key for ``AGENTQ_SECRET_KEY``."""
    return Fernet.generate_key().decode()


class TokenSealer:
    """Seals and unseals tokens and fingerprints their owners with the configured keys."""

    def __init__(self, secret_key: str | None) -> None:
        if not secret_key or not secret_key.strip():
            raise ConfigError(
                "AGENTQ_SECRET_KEY is not set (run `agentq keygen` to make one)",
            )
        raw_keys = [part.strip() for part in secret_key.split(",") if part.strip()]
        fernets: list[Fernet] = []
        for position, raw in enumerate(raw_keys, start=1):
            try:
                fernets.append(Fernet(raw.encode()))
            except (ValueError, TypeError):
                raise ConfigError(
                    f"AGENTQ_SECRET_KEY key #{position} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; run `agentq keygen`)"
                ) from None
        self._fernets = fernets
        self._fernet = MultiFernet(fernets)
        self._fingerprint_keys = [
            hmac.new(raw.encode(), _FINGERPRINT_CONTEXT, hashlib.sha256).digest()
            for raw in raw_keys
        ]

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def unseal(self, sealed: str, ttl: int | None = None) -> str:
        """The token inside ``sealed``: AgentqError ``auth_error`` if it is older than ``ttl``
        seconds, ConfigError if no configured key opens it."""
        try:
            opened = self._fernet.decrypt(sealed.encode())
        except (InvalidToken, ValueError):
            raise ConfigError(
                "the job's sealed token cannot be opened with AGENTQ_SECRET_KEY "
                "(was the key changed without keeping the old one?)"
            ) from None
        if ttl is not None and time.time() - self.sealed_at(sealed) > ttl:
            raise AgentqError(
                "the job's sealed token has expired (older than "
                "AGENTQ_SEALED_TOKEN_TTL_SECONDS); submit the question again",
                code=ErrorCode.AUTH_ERROR,
                transient=False,
            )
        return opened.decode()

    def sealed_at(self, sealed: str) -> float:
        """When ``sealed`` was made (only call on a token that opens)."""
        for fernet in self._fernets:
            try:
                return float(fernet.extract_timestamp(sealed.encode()))
            except InvalidToken:
                continue
        raise ConfigError("the sealed token cannot be opened with AGENTQ_SECRET_KEY")

    def reseal(self, sealed: str) -> str:
        """``sealed`` encrypted under the newest key, keeping the time it was first sealed."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            raise ConfigError("a sealed token cannot be opened with AGENTQ_SECRET_KEY") from None

    def fingerprint(self, token: str) -> str:
        """The owner fingerprint stored on new jobs (made with the newest key)."""
        return self._fingerprint_with(self._fingerprint_keys[0], token)

    def owns(self, fingerprint: str, token: str) -> bool:
        """Whether ``token`` is the one whose fingerprint (under any configured key) is given."""
        return any(
            hmac.compare_digest(fingerprint, self._fingerprint_with(key, token))
            for key in self._fingerprint_keys
        )

    @staticmethod
    def _fingerprint_with(key: bytes, token: str) -> str:
        return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]
