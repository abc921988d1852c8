"""Proving that Infrahub accepts a user's token before anything is spent on it.

An MCP server in token pass-through mode (the compose deployment) answers the handshake,
``tools/list`` and ``prompts/get`` without looking at the token: only a tool call or a resource
read reaches Infrahub with it. Without a proof, a made-up token would get the system prompt and
model calls on the deployment's key (and could even "succeed" when the model answers without a
tool). So the worker proves each token with one cheap authenticated read, before the first model
call, and the producer can do the same at submit (``AGENTQ_VERIFY_TOKEN_AT_SUBMIT``).

The read is ``query_graphql`` with ``AccountProfile { id }``: the token's own account. It goes to
Infrahub on every call (infrahub-mcp 1.2.0 caches only list operations, resource reads and
``get_schema``; ``get_session_info`` never reaches Infrahub), and a token Infrahub rejects fails
with its 401, whatever the instance's anonymous-read setting. A success is remembered per process
for ``AGENTQ_TOKEN_PROOF_SECONDS`` under a keyed hash of the token (the key is random per
process, so the cache holds nothing that outlives it or identifies a token elsewhere).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time

PROOF_TOOL = "query_graphql"
PROOF_QUERY = "query { AccountProfile { id } }"
PROOF_ARGUMENTS: dict[str, object] = {"query": PROOF_QUERY}

# How an MCP server or Infrahub says a token was refused, in the texts of infrahub-mcp 1.1/1.2
# (JSON-RPC error messages, ``isError`` tool results) and of gateways in front of it.
AUTH_REJECTION_TEXT = re.compile(
    r"401 unauthorized|403 forbidden|authentication required|invalid token|"
    r"\bunauthori[sz]ed\b",
    re.IGNORECASE,
)

# Most proven tokens remembered per process: past this, expired entries are dropped, then the
# oldest, so a flood of distinct tokens cannot grow a worker's memory.
MAX_ENTRIES = 10_000


class ProofCache:
    """Tokens this process has proven recently, by keyed hash, each for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def key(self, token: str) -> str:
        """The token's name in this cache: a keyed hash, meaningless outside this process."""
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def proven(self, token: str) -> bool:
        if self._ttl <= 0:
            return False
        key = self.key(token)
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if until <= time.monotonic():
                del self._until[key]
                return False
            return True

    def remember(self, token: str) -> None:
        if self._ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._until) >= MAX_ENTRIES:
                for key in [k for k, until in self._until.items() if until <= now]:
                    del self._until[key]
                while len(self._until) >= MAX_ENTRIES:
                    del self._until[next(iter(self._until))]
            self._until[self.key(token)] = now + self._ttl
