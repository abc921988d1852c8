"""Completion webhooks, signed as Standard Webhooks (https://www.standardwebhooks.com/).

Each delivery carries ``webhook-id`` (stable across retries, so a receiver can drop duplicates),
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the secret's bytes (``whsec_<base64>``), so any Standard Webhooks library verifies it.

URLs are checked when a job or batch is submitted: http(s) only, no credentials in the URL, and no
loopback, private or link-local address (literal or resolved) unless the deployment allows them,
so a user cannot make the workers probe the internal network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from agentq.errors import BadRequest, ConfigError

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def generate_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError("AGENTQ_WEBHOOK_SECRET must be whsec_ followed by base64") from None


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


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """``url`` if it may receive webhooks; BadRequest (one line) otherwise."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise BadRequest("the webhook URL must not contain credentials")
    if not allow_private:
        for address in _addresses(parts.hostname, parts.port or 443):
            if not address.is_global:
                raise BadRequest(
                    f"the webhook URL's host {parts.hostname} is a private or local address "
                    "(AGENTQ_WEBHOOK_ALLOW_PRIVATE allows it)"
                )
    return url


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise BadRequest(f"the webhook URL's host {host} does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


@dataclass
class DeliveryResult:
    delivered: bool
    status: int | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


def deliver_once(
    url: str,
    payload: dict[str, Any],
    secret: str,
    msg_id: str,
    *,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> DeliveryResult:
    """POST one signed delivery; says whether it arrived and whether trying again may help."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "user-agent": "agentq-webhooks",
    }
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return DeliveryResult(False, error=type(exc).__name__, retryable=True)
    finally:
        if own:
            http.close()
    if response.is_success:
        return DeliveryResult(True, status=response.status_code)
    retryable = response.status_code == 429 or response.status_code >= 500
    retry_after = None
    if "retry-after" in response.headers:
        try:
            retry_after = float(response.headers["retry-after"])
        except ValueError:
            retry_after = None
    return DeliveryResult(
        False,
        status=response.status_code,
        error=f"HTTP {response.status_code}",
        retryable=retryable,
        retry_after=retry_after,
    )
