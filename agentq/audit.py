"""The audit log: who (tenant fingerprint) submitted, read or cancelled what.

Audit events go through structlog like every other line, under the logger ``agentq.audit``, so
they can be routed apart (filter on ``logger == "agentq.audit"``). The tenant is named by a prefix
of its owner fingerprint, a keyed HMAC of the token: stable per user, useless to recover the token.
A refused read is logged too, with the id that was asked for.
"""

from __future__ import annotations

from typing import Any

from agentq.logs import get_logger

_log = get_logger("agentq.audit")

TENANT_CHARS = 16


def tenant_id(owner_fingerprint: str) -> str:
    """How a tenant is named in logs and metrics."""
    return owner_fingerprint[:TENANT_CHARS]


def audit(action: str, owner_fingerprint: str, **fields: Any) -> None:
    """Record ``action`` (e.g. ``job.submit``) by the tenant with this fingerprint."""
    _log.info("audit", action=action, tenant=tenant_id(owner_fingerprint), **fields)
