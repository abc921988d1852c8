"""Sealing users' Infrahub tokens, and telling owners apart without storing their tokens.

A token is sealed (Fernet: AES-CBC + HMAC) by the producer before it is written, and unsealed by
the worker only to open the MCP session. A job records an *owner fingerprint*, a keyed HMAC of the
token: reading a job needs the same token, yet Redis never holds anything from which the token
could be recovered or even brute-forced without the secret key.

A sealed token is bound to the job it was sealed for: the sealed payload holds the job id, the
owner fingerprint, a SHA-256 digest of the question and whether writes are allowed, and the worker
opens it only for a job whose record matches all four (``SealBinding``). So someone who can write
to Redis but has no key cannot lend a waiting victim's sealed token to a job of their own, nor
change the question or the write permission of the victim's job. Tokens sealed before binding
(format v1, the bare token) are refused: their jobs fail ``auth_error`` and are submitted again.

``AGENTQ_SECRET_KEY`` may list several keys, newest first: the newest seals and makes the
fingerprint of new jobs; all of them unseal, and a token matches a fingerprint made under any of
them, so keys can be rotated without losing jobs. ``agentq reseal`` moves every waiting job to the
newest key (its seal and its owner fingerprint) so the old key can be dropped.

A sealed token carries the time it was sealed, and no longer opens after
``AGENTQ_SEALED_TOKEN_TTL_SECONDS``: a copy taken from Redis (a backup, a dump) is useless later
even to someone who also has the key. Resealing keeps the original time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agentq.errors import AgentqError, ConfigError, ErrorCode
from agentq.jobs import Job

_FINGERPRINT_CONTEXT = b"agentq owner fingerprint v1"
SEAL_FORMAT = 2  # the payload's "v": a JSON object binding the token to its job


def generate_key() -> str:
    """A new random key for ``AGENTQ_SECRET_KEY``."""
    return Fernet.generate_key().decode()


def question_digest(question: str) -> str:
    return hashlib.sha256(question.encode()).hexdigest()


@dataclass(frozen=True)
class SealBinding:
    """What a sealed token was sealed for; it opens only for a job record that matches."""

    job_id: str
    owner: str
    question_sha256: str
    allow_writes: bool

    @classmethod
    def of(cls, job: Job) -> SealBinding:
        return cls(job.id, job.owner, question_digest(job.question), job.allow_writes)

    def with_owner(self, owner: str) -> SealBinding:
        return replace(self, owner=owner)


def _auth_error(message: str) -> AgentqError:
    return AgentqError(message, code=ErrorCode.AUTH_ERROR, transient=False)


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
            for raw in dict.fromkeys(raw_keys)
        ]

    def seal(self, token: str, binding: SealBinding) -> str:
        """``token`` sealed under the newest key, for the job ``binding`` describes only."""
        return self._fernet.encrypt(self._payload(token, binding)).decode()

    def unseal(self, sealed: str, binding: SealBinding, ttl: int | None = None) -> str:
        """The token inside ``sealed``, if it was sealed for ``binding`` (the job record it is
        about to serve) and its owner fingerprint matches the token.

        AgentqError ``auth_error`` if it was sealed for another job, is in the old unbound
        format, or is older than ``ttl`` seconds; ConfigError if no configured key opens it.
        """
        token, bound = self.open(sealed)
        if ttl is not None and time.time() - self.sealed_at(sealed) > ttl:
            raise _auth_error(
                "the job's sealed token has expired (older than "
                "AGENTQ_SEALED_TOKEN_TTL_SECONDS); submit the question again"
            )
        self.check_binding(token, bound, binding)
        return token

    def check_binding(self, token: str, bound: SealBinding, expected: SealBinding) -> None:
        """AgentqError ``auth_error`` unless ``bound`` (what a token was sealed for) is
        ``expected`` and the token's fingerprint is the owner's."""
        if not (
            hmac.compare_digest(bound.job_id, expected.job_id)
            and hmac.compare_digest(bound.owner, expected.owner)
            and hmac.compare_digest(bound.question_sha256, expected.question_sha256)
            and bound.allow_writes == expected.allow_writes
            and self.owns(expected.owner, token)
        ):
            raise _auth_error(
                "the sealed token does not belong to this job (it was sealed for another job, "
                "owner, question or write permission); submit the question again"
            )

    def open(self, sealed: str) -> tuple[str, SealBinding]:
        """The token inside ``sealed`` and what it was sealed for, without checking either:
        ConfigError if no configured key opens it, ``auth_error`` for the unbound v1 format."""
        try:
            opened = self._fernet.decrypt(sealed.encode())
        except (InvalidToken, ValueError):
            raise ConfigError(
                "the job's sealed token cannot be opened with AGENTQ_SECRET_KEY "
                "(was the key changed without keeping the old one?)"
            ) from None
        try:
            payload = json.loads(opened)
            if not isinstance(payload, dict) or payload.get("v") != SEAL_FORMAT:
                raise ValueError("not a bound seal")
            token = str(payload["t"])
            bound = SealBinding(
                job_id=str(payload["job"]),
                owner=str(payload["owner"]),
                question_sha256=str(payload["q"]),
                allow_writes=payload["w"] is True,
            )
        except (ValueError, KeyError, TypeError):
            raise _auth_error(
                "the job's sealed token is in an old format that is not bound to its job "
                "(sealed by an older agentq); submit the question again"
            ) from None
        return token, bound

    def sealed_at(self, sealed: str) -> float:
        """When ``sealed`` was made (only call on a token that opens)."""
        for fernet in self._fernets:
            try:
                return float(fernet.extract_timestamp(sealed.encode()))
            except InvalidToken:
                continue
        raise ConfigError("the sealed token cannot be opened with AGENTQ_SECRET_KEY")

    def rebind(self, sealed: str, token: str, binding: SealBinding) -> str:
        """``token`` (opened from ``sealed``) sealed again under the newest key for
        ``binding``, keeping the time ``sealed`` was first made, so resealing never extends
        a token's life."""
        made = int(self.sealed_at(sealed))
        return self._fernets[0].encrypt_at_time(self._payload(token, binding), made).decode()

    def fingerprint(self, token: str) -> str:
        """The owner fingerprint stored on new jobs (made with the newest key)."""
        return self._fingerprint_with(self._fingerprint_keys[0], token)

    def fingerprints(self, token: str) -> list[str]:
        """The token's owner fingerprint under every configured key, newest key first: the
        owner indexes a token may have jobs in while keys rotate."""
        return [self._fingerprint_with(key, token) for key in self._fingerprint_keys]

    def owns(self, fingerprint: str, token: str) -> bool:
        """Whether ``token`` is the one whose fingerprint (under any configured key) is given."""
        return any(hmac.compare_digest(fingerprint, f) for f in self.fingerprints(token))

    @staticmethod
    def _payload(token: str, binding: SealBinding) -> bytes:
        return json.dumps(
            {
                "v": SEAL_FORMAT,
                "t": token,
                "job": binding.job_id,
                "owner": binding.owner,
                "q": binding.question_sha256,
                "w": binding.allow_writes,
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def _fingerprint_with(key: bytes, token: str) -> str:
        return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]
