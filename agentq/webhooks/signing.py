"""Signing deliveries as Standard Webhooks, with a secret of each tenant's own.

Each delivery carries ``webhook-id`` (stable across retries, so a receiver can drop duplicates),
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the secret's bytes (``whsec_<base64>``), so any Standard Webhooks library verifies it.

Each tenant's deliveries are signed with its own secret, derived from ``AGENTQ_WEBHOOK_SECRET`` and
the owner fingerprint (``tenant_secret``): a tenant that can verify its own deliveries cannot
forge another tenant's. A tenant fetches its secret with ``agentq webhook-secret`` or
``GET /v1/webhook-secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from pydantic import SecretStr

from agentq.audit import audit
from agentq.errors import BadRequest, ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_TENANT_CONTEXT = b"agentq webhook tenant secret v1\x00"


def generate_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError("AGENTQ_WEBHOOK_SECRET must be whsec_ followed by base64") from None


def tenant_secret(master: str, owner: str) -> str:
    """The secret that signs the deliveries of the owner with fingerprint ``owner``.

    An HMAC of the fingerprint keyed with the deployment's secret (with a context string, so the
    value is useful for nothing else): each tenant can verify its own deliveries and no other's.
    It follows the fingerprint, which changes when AGENTQ_SECRET_KEY is rotated.
    """
    digest = hmac.new(
        _secret_bytes(master), _TENANT_CONTEXT + owner.encode(), hashlib.sha256
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def owner_webhook_secret(master: SecretStr | None, owner: str) -> str:
    """``tenant_secret`` for a submitter asking for its own; BadRequest if webhooks are off."""
    if master is None:
        raise BadRequest("webhooks are not configured here (AGENTQ_WEBHOOK_SECRET is not set)")
    audit("webhook.secret", owner)
    return tenant_secret(master.get_secret_value(), owner)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: float = 300.0) -> bool:
    """Whether a received message is authentic and fresh (what a receiver checks)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
