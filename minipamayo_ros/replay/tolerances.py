"""The tolerance table, latency gates and text rule of ``compare`` (values in ``config/replay.yaml``).

Pure numpy; the only place that decides whether a replayed number is "the same" as a golden one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

FIELDS = ("waypoints", "speed", "uncertainty", "control_speed", "control_steering")
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


class ToleranceError(ValueError):
    """The tolerance file is unusable (message says which entry)."""


@dataclass(frozen=True)
class Tol:
    atol: float
    rtol: float

    def allowed(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per element: ``max(atol, rtol * max(|a|, |b|))``."""
        return np.maximum(self.atol, self.rtol * np.maximum(np.abs(a), np.abs(b)))

    def check(self, a: Any, b: Any) -> tuple[bool, int, float, float]:
        """``(ok, index of the worst element, its |a - b|, what was allowed there)``.

        NaN on either side never passes (a NaN golden is a broken golden).
        """
        a = np.asarray(a, dtype=np.float64).reshape(-1)
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if a.shape != b.shape:
            return False, -1, float("inf"), 0.0
        if a.size == 0:
            return True, -1, 0.0, 0.0
        diff = np.abs(a - b)
        allowed = self.allowed(a, b)
        excess = np.where(np.isfinite(diff), diff - allowed, np.inf)
        i = int(np.argmax(excess))
        return bool(excess[i] <= 0.0), i, float(diff[i]), float(allowed[i])

    def describe(self) -> str:
        return f"max(atol {self.atol:g}, rtol {self.rtol:g}·max(|a|,|b|))"


@dataclass(frozen=True)
class LatencyGates:
    metric: str = "total_ms"
    budgets_ms: dict[str, float] = field(default_factory=dict)  # p95 / p99 / max / mean -> budget

    def evaluate(self, samples_ms: Any) -> list[dict[str, Any]]:
        """One result per budget: ``{gate, value_ms, budget_ms, passed}`` (no samples -> not passed)."""
        x = np.asarray([v for v in np.asarray(samples_ms, dtype=np.float64).reshape(-1) if np.isfinite(v)])
        out = []
        for name, budget in self.budgets_ms.items():
            value = float("nan") if x.size == 0 else float(_statistic(x, name))
            out.append(
                {
                    "gate": f"{self.metric} {name}",
                    "value_ms": value,
                    "budget_ms": float(budget),
                    "passed": bool(np.isfinite(value) and value <= budget),
                }
            )
        return out


def _statistic(x: np.ndarray, name: str) -> float:
    if name == "max":
        return float(np.max(x))
    if name == "mean":
        return float(np.mean(x))
    if name in PERCENTILES:
        return float(np.percentile(x, PERCENTILES[name]))
    raise ToleranceError(f"unknown latency statistic '{name}' (use p50, p95, p99, max, mean)")


@dataclass(frozen=True)
class ToleranceTable:
    profiles: dict[str, dict[str, Tol]]
    latency: LatencyGates
    max_token_edits: int = 3
    source: str = ""

    def profile(self, name: str) -> dict[str, Tol]:
        if name not in self.profiles:
            raise ToleranceError(
                f"tolerance profile '{name}' is not in {self.source or 'the table'} "
                f"(profiles: {', '.join(self.profiles)})"
            )
        return self.profiles[name]


def default_path() -> Path:
    from minipamayo_ros.params import config_dir

    return config_dir() / "replay.yaml"


def load_table(path: Path | str | None = None) -> ToleranceTable:
    p = Path(path) if path else default_path()
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ToleranceError(f"cannot read tolerance file {p}: {exc}") from exc
    profiles: dict[str, dict[str, Tol]] = {}
    for name, fields in (data.get("profiles") or {}).items():
        prof: dict[str, Tol] = {}
        for fname in FIELDS:
            entry = (fields or {}).get(fname)
            if not isinstance(entry, dict) or "atol" not in entry or "rtol" not in entry:
                raise ToleranceError(f"{p}: profiles.{name}.{fname} needs atol and rtol")
            atol, rtol = float(entry["atol"]), float(entry["rtol"])
            if not (atol >= 0.0 and rtol >= 0.0):
                raise ToleranceError(f"{p}: profiles.{name}.{fname}: atol and rtol must be >= 0")
            prof[fname] = Tol(atol, rtol)
        unknown = set(fields or {}) - set(FIELDS)
        if unknown:
            raise ToleranceError(
                f"{p}: profiles.{name} has unknown fields {sorted(unknown)} (known: {FIELDS})"
            )
        profiles[str(name)] = prof
    if not profiles:
        raise ToleranceError(f"{p}: no tolerance profiles")
    lat = data.get("latency") or {}
    budgets = {str(k): float(v) for k, v in (lat.get("budgets_ms") or {}).items()}
    for k in budgets:
        _statistic(np.zeros(1), k)  # validates the name
    return ToleranceTable(
        profiles=profiles,
        latency=LatencyGates(str(lat.get("field", "total_ms")), budgets),
        max_token_edits=int((data.get("text") or {}).get("max_token_edits", 3)),
        source=str(p),
    )


def auto_profile(backend: str, precision: str, model_id: str, golden_model_id: str) -> str:
    """The profile for a replay on ``backend`` at ``precision`` against a golden of ``golden_model_id``.

    ONNX Runtime with the golden's own model -> ``exact``; an INT8 model or engine -> ``int8``;
    TensorRT / torch (FP16, BF16, or TF32 "FP32") -> ``fp16``; ONNX Runtime with another FP32
    model -> ``exact`` as well (a changed model must show up, and be accepted by ``--update-golden``).
    """
    p = precision.lower()
    if "int8" in p or "int8" in model_id.lower():
        return "int8"
    if backend in ("tensorrt", "torch"):
        return "fp16"
    return "exact"


def token_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over whitespace tokens (insert / delete / substitute one token = 1)."""
    x, y = a.split(), b.split()
    prev = list(range(len(y) + 1))
    for i, tx in enumerate(x, 1):
        cur = [i] + [0] * len(y)
        for j, ty in enumerate(y, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (tx != ty))
        prev = cur
    return prev[-1]
