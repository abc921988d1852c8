"""Which URLs and addresses may receive a webhook, checked at submit and again at delivery.

At submit (``check_webhook_url``), for a clear refusal: https only (http if
``AGENTQ_WEBHOOK_ALLOW_HTTP``), no credentials, a well-formed host, and no loopback, private,
link-local or otherwise non-global address, literal or resolved (unless
``AGENTQ_WEBHOOK_ALLOW_PRIVATE``). At delivery (``agentq.webhooks.delivery``), because a name may
resolve elsewhere by then (DNS rebinding) and the settings may have changed: the name is resolved
once, every address is checked again, and the connection goes to exactly the checked address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

from agentq.errors import BadRequest

MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to. One function, so tests can swap in a table.
Resolver = Callable[[str, int], list[Address]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


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
