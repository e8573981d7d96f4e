"""Token usage as the server reports it, and the cost estimate from configured prices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers_without_usage: int = 0  # servers that omit ``usage``: the totals are then lower bounds

    def add(self, usage: dict[str, Any] | None) -> None:
        if not isinstance(usage, dict):
            self.answers_without_usage += 1
            return
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def cost(self) -> float | None:
        """Estimated cost in the prices' currency, or None when no price is configured."""
        if self.price_input_per_mtok is None and self.price_output_per_mtok is None:
            return None
        return (self.prompt_tokens * (self.price_input_per_mtok or 0.0)
                + self.completion_tokens * (self.price_output_per_mtok or 0.0)) / 1e6

    def as_dict(self) -> dict[str, Any]:
        cost = self.cost()
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "answers_without_usage": self.answers_without_usage,
            "cost_estimate": None if cost is None else round(cost, 6),
            "price_per_mtok": {"input": self.price_input_per_mtok, "output": self.price_output_per_mtok},
        }
