"""The result every benchmark returns: metrics (with units), goals met or not, a markdown summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchResult:
    metrics: dict[str, Any]                 # name -> value; names end in their unit (_ms, _us, _hz)
    summary_md: str                         # a few lines / a table for summary.md
    goals: dict[str, bool] = field(default_factory=dict)  # goal description -> met?
    artifacts: list[str] = field(default_factory=list)    # files written (PNG plots, ...)

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "goals": self.goals, "artifacts": self.artifacts}
