"""OpenAI's automatic prompt caching, as the model double reports it in ``cached_tokens``.

OpenAI caches the prompts it has processed by prefix: a request that starts with a prefix served
recently (by default within 5-10 minutes of inactivity) is billed, and answered, faster for that
part, and its usage says how many input tokens were cached. Only prefixes of 1024 tokens or more
are cached, and hits count in steps of 128 tokens. Agentq's cost and latency figures depend on
it (a long system prompt and tool list shared by every job), so the double models it rather than
always reporting 0.

A prompt is a sequence of blocks, in the order the model reads them: the instructions (the
Responses API's ``instructions``; in Chat Completions the leading system/developer messages),
then each tool definition in the order given, then each further message or input item. A cache
hit can only end at a block boundary here (OpenAI's boundary is any 128-token step; blocks keep
the double deterministic and its counts easy to reason about), and a request's input tokens are
the sum of its blocks' tokens, so ``cached_tokens <= input_tokens`` always.

The cache is partitioned by model and ``prompt_cache_key``. That key is OpenAI's routing hint:
requests with the same key (and prefix) go to the same cache machines, requests with different
keys to different ones, so they do not share cached prefixes even when the prompts are equal. A
key made fresh for every run therefore defeats sharing across runs; the Agents SDK does just that
when it talks to OpenAI's own endpoint and no key, conversation, session or group id is given
(``agents-sdk:run:...``). Set a stable key (per agent or tenant) to share a system prompt across
jobs; OpenAI also spills a key's traffic over to more machines beyond roughly 15 requests a
minute per prefix, which the double does not model.

Entries live ``ttl_s`` seconds after their last use, and at most ``max_entries`` are kept (least
recently used dropped first), so a benchmark's traffic cannot grow the double without bound.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from doubles.model_policy import count_tokens

MIN_CACHED_TOKENS = 1024  # shorter prefixes are never cached
CACHE_STEP = 128  # hits are reported in steps of this many tokens
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class Prefix:
    """The prompt up to the end of one block: its digest (partition included) and tokens."""

    digest: bytes
    tokens: int


def prompt_blocks(body: dict[str, Any], responses: bool) -> list[Any]:
    """A request's prompt as blocks, in the order the model reads them (see the module doc)."""
    blocks: list[Any] = []
    tools = body.get("tools") or []
    if responses:
        instructions = body.get("instructions")
        if instructions:
            blocks.append(instructions)
        blocks += list(tools)
        items = body.get("input")
        if isinstance(items, list):
            blocks += items
        elif items:
            blocks.append(items)
        return blocks
    messages = list(body.get("messages") or [])
    leading = 0
    while leading < len(messages) and _role(messages[leading]) in ("system", "developer"):
        leading += 1
    if leading:
        blocks.append(messages[:leading])
    return blocks + list(tools) + messages[leading:]


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def block_tokens(blocks: Sequence[Any]) -> list[int]:
    """Each block's tokens, by the double's one tokenizer."""
    return [count_tokens(block) for block in blocks]


def prefixes(
    model: Any, cache_key: Any, blocks: Sequence[Any], tokens: Sequence[int]
) -> list[Prefix]:
    """Every block boundary of the prompt (its blocks and their ``block_tokens``): a digest of
    the partition and the canonical JSON of the blocks so far, with the cumulative tokens
    there."""
    hasher = hashlib.sha256(_canonical([model, cache_key]))
    found: list[Prefix] = []
    total = 0
    for block, block_total in zip(blocks, tokens, strict=True):
        # Canonical JSON never holds a raw newline, so it separates blocks unambiguously.
        hasher.update(b"\n" + _canonical(block))
        total += block_total
        found.append(Prefix(hasher.digest(), total))
    return found


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class PromptCache:
    """The prefixes served lately (one partition's are another's misses, their digests differ),
    each with when it was last used."""

    def __init__(
        self, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[bytes, float] = OrderedDict()  # digest: last used

    def __len__(self) -> int:
        return len(self._entries)

    def serve(self, prompt: Sequence[Prefix], ttl_s: float) -> int:
        """The cached tokens of a request with this prompt (the longest prefix still remembered,
        in steps of ``CACHE_STEP``; 0 under ``MIN_CACHED_TOKENS``), then remember its own
        prefixes of ``MIN_CACHED_TOKENS`` or more."""
        now = self.clock()
        cached = 0
        for prefix in reversed(prompt):
            used = self._entries.get(prefix.digest)
            if used is None:
                continue
            if now - used > ttl_s:
                del self._entries[prefix.digest]
                continue
            cached = prefix.tokens
            break
        for prefix in prompt:
            if prefix.tokens >= MIN_CACHED_TOKENS:
                self._entries[prefix.digest] = now
                self._entries.move_to_end(prefix.digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if cached < MIN_CACHED_TOKENS:
            return 0
        return cached - cached % CACHE_STEP
