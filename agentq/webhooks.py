"""Completion webhooks, signed as Standard Webhooks (https://www.standardwebhooks.com/).

Each delivery carries ``webhook-id`` (stable across retries, so a receiver can drop duplicates),
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the secret's bytes (``whsec_<base64>``), so any Standard Webhooks library verifies it.

Each tenant's deliveries are signed with its own secret, derived from ``AGENTQ_WEBHOOK_SECRET`` and
the owner fingerprint (``tenant_secret``): a tenant that can verify its own deliveries cannot
forge another tenant's. A tenant fetches its secret with ``agentq webhook-secret`` or
``GET /v1/webhook-secret``.

A URL is checked twice. At submit (``check_webhook_url``), for a clear refusal: https only (http
if ``AGENTQ_WEBHOOK_ALLOW_HTTP``), no credentials, a well-formed host, and no loopback, private,
link-local or otherwise non-global address, literal or resolved (unless
``AGENTQ_WEBHOOK_ALLOW_PRIVATE``). And at delivery (``deliver``), because a name may resolve
elsewhere by then (DNS rebinding) and the settings may have changed: the name is resolved once,
every address is checked again, and the connection goes to exactly the checked address, with the
name kept in the Host header and as the TLS server name (SNI and certificate check).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import idna
import redis
from pydantic import SecretStr

from agentq import lua
from agentq.audit import audit
from agentq.errors import BadRequest, ConfigError

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_TENANT_CONTEXT = b"agentq webhook tenant secret v1\x00"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to. One function, so tests can swap in a table.
Resolver = Callable[[str, int], list[Address]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


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


# --- Which URLs and addresses may receive webhooks -------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL, split into what the pinned connection needs."""

    scheme: str
    host: str  # an ASCII (IDNA) name, or an IP address without brackets
    port: int
    path: str  # path and query
    host_header: str  # what the receiver sees in Host: the name, and the port if the URL gave it


def parse_webhook_url(url: str, *, allow_http: bool) -> WebhookTarget:
    """The URL's parts if it is a well-formed webhook URL; BadRequest (one line) otherwise."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        explicit_port = parts.port
    except ValueError:
        raise BadRequest("the webhook URL is malformed (bad host or port)") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise BadRequest("the webhook URL must be an http:// or https:// URL with a host")
    if parts.scheme == "http" and not allow_http:
        raise BadRequest(
            "the webhook URL must be https:// (AGENTQ_WEBHOOK_ALLOW_HTTP allows http://)"
        )
    if parts.username is not None or parts.password is not None:
        raise BadRequest("the webhook URL must not contain credentials")
    if explicit_port == 0:
        raise BadRequest("the webhook URL's port must be between 1 and 65535")
    host = _ascii_host(hostname)
    shown = f"[{host}]" if ":" in host else host
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return WebhookTarget(
        scheme=parts.scheme,
        host=host,
        port=port,
        path=path,
        host_header=shown if explicit_port is None else f"{shown}:{port}",
    )


def _ascii_host(hostname: str) -> str:
    """The host as it goes on the wire: an IP literal, or a valid DNS name in ASCII (IDNA)."""
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    bad = BadRequest(f"the webhook URL's host {hostname[:80]!r} is not a valid host name")
    if "%" in hostname:
        raise bad
    try:
        name = hostname if hostname.isascii() else idna.encode(hostname, uts46=True).decode()
    except (idna.IDNAError, UnicodeError):
        raise bad from None
    name = name.lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise bad
    for label in labels:
        if not all(ch.isalnum() or ch in "-_" for ch in label) or label.startswith("-"):
            raise bad
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise bad from None
    return name


def resolve_host(host: str, port: int) -> list[Address]:
    """The addresses ``host`` resolves to (itself if it is an IP address)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise BadRequest(f"the webhook URL's host {host} does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo, NAT64, IPv4-compatible."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        found.append(low)
    return found


def is_public(address: Address) -> bool:
    """Whether ``address`` is a global unicast address that leads to no non-global one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if address.teredo is not None or not all(map(is_public, embedded)):
            return False
        if address.ipv4_mapped is not None or address in _NAT64:
            return True  # it means its IPv4 address, which is public
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def check_addresses(host: str, addresses: list[Address], *, allow_private: bool) -> None:
    """BadRequest unless every address may be connected to (or the deployment allows all)."""
    if not addresses:
        raise BadRequest(f"the webhook URL's host {host} does not resolve")
    if allow_private:
        return
    if not all(is_public(address) for address in addresses):
        raise BadRequest(
            f"the webhook URL's host {host} is a private or local address "
            "(AGENTQ_WEBHOOK_ALLOW_PRIVATE allows it)"
        )


def check_webhook_url(
    url: str,
    *,
    allow_private: bool,
    allow_http: bool = False,
    resolver: Resolver = resolve_host,
) -> str:
    """``url`` if it may receive webhooks; BadRequest (one line) otherwise."""
    target = parse_webhook_url(url, allow_http=allow_http)
    if not allow_private:
        check_addresses(target.host, resolver(target.host, target.port), allow_private=False)
    return url.strip()


# --- Delivery -------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    delivered: bool
    status: int | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


def signed_request(
    payload: dict[str, Any], secret: str, msg_id: str
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery, signed now."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "user-agent": "agentq-webhooks",
    }
    return body, headers


async def deliver(
    url: str,
    payload: dict[str, Any],
    secret: str,
    msg_id: str,
    *,
    allow_private: bool,
    allow_http: bool,
    deadline: float = 10.0,
    resolver: Resolver = resolve_host,
    verify_tls: ssl.SSLContext | bool = True,
) -> DeliveryResult:
    """POST one signed delivery to the address checked now; says if it arrived or may later.

    ``deadline`` (seconds) bounds the whole attempt (resolving, connecting, sending, reading the
    status), not each read, so a receiver that drips its reply byte by byte cannot hold it.
    The reply's body is never read: the status is all a delivery needs.
    """
    body, headers = signed_request(payload, secret, msg_id)
    try:
        async with asyncio.timeout(deadline):
            return await _post_pinned(
                url, body, headers, allow_private, allow_http, deadline, resolver, verify_tls
            )
    except TimeoutError:
        return DeliveryResult(False, error=f"no reply within {deadline:g}s", retryable=True)


async def _post_pinned(
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool,
    allow_http: bool,
    deadline: float,
    resolver: Resolver,
    verify_tls: ssl.SSLContext | bool,
) -> DeliveryResult:
    try:
        target = parse_webhook_url(url, allow_http=allow_http)
    except BadRequest as exc:
        return DeliveryResult(False, error=str(exc))
    loop = asyncio.get_running_loop()
    try:
        addresses = await loop.run_in_executor(None, resolver, target.host, target.port)
    except BadRequest as exc:
        return DeliveryResult(False, error=str(exc), retryable=True)  # DNS may come back
    try:
        check_addresses(target.host, addresses, allow_private=allow_private)
    except BadRequest as exc:
        return DeliveryResult(False, error=str(exc))
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = f"{target.scheme}://{literal}:{target.port}{target.path}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    # One client per attempt: a pooled connection, made for another name on the same address,
    # must never carry this delivery. No proxies from the environment: they would undo the pin.
    async with httpx.AsyncClient(
        verify=verify_tls, trust_env=False, follow_redirects=False, timeout=deadline
    ) as client:
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "host": target.host_header},
            extensions=extensions,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, error=type(exc).__name__, retryable=True)
        await response.aclose()  # the body is never read
    if response.is_success:
        return DeliveryResult(True, status=response.status_code)
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
        retryable=response.status_code == 429 or response.status_code >= 500,
        retry_after=retry_after,
    )


# --- The durable queue of deliveries --------------------------------------------------------

DUE_KEY = "agentq:webhooks:due"  # zset: "job:<id>" / "batch:<id>" -> when its next try is due
ATTEMPTS_KEY = "agentq:webhooks:attempts"  # hash: the same member -> attempts started


@dataclass(frozen=True)
class Claimed:
    kind: str  # "job" or "batch"
    object_id: str
    attempt: int  # 1-based

    @property
    def member(self) -> str:
        return f"{self.kind}:{self.object_id}"

    @property
    def msg_id(self) -> str:
        return f"{self.kind}_{self.object_id}"  # the webhook-id: the same on every attempt


class DeliveryQueue:
    """Deliveries due in Redis, claimed under a lease, so none is lost with a worker."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._take = lua.register(client, "webhooks_take_notified")
        self._claim = lua.register(client, "webhooks_claim")

    def add(self, kind: str, object_id: str, now: float | None = None) -> None:
        self._redis.zadd(DUE_KEY, {f"{kind}:{object_id}": now or time.time()}, nx=True)

    def take_notified(self, notify_key: str, limit: int = 100) -> int:
        return int(cast(int, self._take(keys=[notify_key, DUE_KEY], args=[time.time(), limit])))

    def claim(self, limit: int, lease: float, now: float | None = None) -> list[Claimed]:
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        flat = cast(
            list[Any], self._claim(keys=[DUE_KEY, ATTEMPTS_KEY], args=[now, now + lease, limit])
        )
        claimed = []
        for member, attempt in zip(flat[::2], flat[1::2], strict=True):
            name = member.decode() if isinstance(member, bytes) else str(member)
            kind, _, object_id = name.partition(":")
            claimed.append(Claimed(kind, object_id, int(attempt)))
        return claimed

    def retry_at(self, claimed: Claimed, when: float) -> None:
        self._redis.zadd(DUE_KEY, {claimed.member: when}, xx=True)

    def done(self, claimed: Claimed) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(DUE_KEY, claimed.member)
        pipe.hdel(ATTEMPTS_KEY, claimed.member)
        pipe.execute()
