"""What model calls cost: a dated price table, and the dollars of each call's tokens.

Providers bill per million tokens, at one price for input, a lower one for input served from
their prefix cache, and one for output (reasoning tokens are output tokens, billed as such), and
each price differs by service tier (``flex`` is about half of ``default``; ``priority`` more).
The table ships as ``agentq/data/prices.json``, dated, with where its figures come from;
``AGENTQ_PRICES_FILE`` replaces it with a file of the same shape. A model or a tier the table
does not list has no price: its calls count their tokens and say "cost unknown" (``None``),
never a guessed figure.

A model name with a date suffix (``gpt-4.1-mini-2025-04-14``, as providers answer) is priced as
the name without it when only that is listed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from agentq.errors import ConfigError
from agentq.jobs import SERVICE_TIERS

MILLION = 1_000_000
_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        """The dollars of one call: uncached input, cached input and output, each at its price."""
        cached = min(max(cached_tokens, 0), input_tokens)
        return (
            (input_tokens - cached) * self.input
            + cached * self.cached_input
            + output_tokens * self.output
        ) / MILLION


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    models: dict[str, dict[str, Price]]

    def price(self, model: str | None, tier: str | None) -> Price | None:
        """The price of ``model``'s calls served at ``tier`` (None or ``auto``: ``default``);
        None when the table does not say."""
        if not model:
            return None
        tiers = self.models.get(model) or self.models.get(_DATE_SUFFIX.sub("", model))
        if tiers is None:
            return None
        return tiers.get(served_tier(tier))

    def cost(
        self,
        model: str | None,
        tier: str | None,
        input_tokens: int,
        cached_tokens: int,
        output_tokens: int,
    ) -> float | None:
        price = self.price(model, tier)
        if price is None:
            return None
        return price.cost(input_tokens, cached_tokens, output_tokens)

    def knows(self, model: str | None) -> bool:
        """Whether the table prices ``model`` at its default tier."""
        return self.price(model, "default") is not None

    @classmethod
    def parse(cls, data: Any, where: str) -> PriceTable:
        """A table from its JSON; ConfigError, naming ``where``, if it is not one."""
        try:
            models: dict[str, dict[str, Price]] = {}
            for model, tiers in data["models"].items():
                models[str(model)] = {}
                for tier, figures in tiers.items():
                    if tier not in SERVICE_TIERS or tier == "auto":
                        raise ValueError(f"{model}: unknown tier {tier!r}")
                    price = Price(
                        input=float(figures["input"]),
                        cached_input=float(figures.get("cached_input", figures["input"])),
                        output=float(figures["output"]),
                    )
                    values = (price.input, price.cached_input, price.output)
                    if not all(math.isfinite(v) and v >= 0 for v in values):
                        raise ValueError(f"{model} {tier}: prices must be 0 or more")
                    models[str(model)][tier] = price
            return cls(as_of=str(data.get("as_of", "")), source=str(data.get("source", "")),
                       models=models)  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{where} is not a price table: {exc}") from None


def served_tier(tier: str | None) -> str:
    """The tier a call is billed at: what the provider said served it; ``auto`` or nothing
    means ``default``."""
    return "default" if tier in (None, "", "auto") else str(tier)


@lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> PriceTable:
    """The table in ``path`` (AGENTQ_PRICES_FILE), or the one shipped with agentq."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"AGENTQ_PRICES_FILE {path}: {exc}") from None
        return PriceTable.parse(data, f"AGENTQ_PRICES_FILE {path}")
    shipped = resources.files("agentq") / "data" / "prices.json"
    return PriceTable.parse(json.loads(shipped.read_text(encoding="utf-8")), "prices.json")


def usd(amount: float | None, *, unknown: str = "cost unknown") -> str:
    """Dollars as people read them: cents for most amounts, more digits for fractions of a
    cent (one model call costs about a tenth of one)."""
    if amount is None:
        return unknown
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if abs(amount) >= 0.01:
        return f"${amount:.4f}"
    return f"${amount:.6f}"
