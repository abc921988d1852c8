"""One delivery: a signed POST to exactly the address checked a moment before.

The name is resolved once and every address checked again (``agentq.webhooks.targets``), then the
connection goes to the checked address, with the name kept in the Host header and as the TLS
server name (SNI and certificate check), so DNS rebinding between check and connect cannot send a
delivery inside the network. The outcome says whether it arrived, or whether it may later.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from agentq.errors import BadRequest
from agentq.webhooks.signing import sign
from agentq.webhooks.targets import Resolver, check_addresses, parse_webhook_url, resolve_host


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
