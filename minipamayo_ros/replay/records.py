"""Replay outputs as plain records, one JSON object per line (replayed files and goldens alike).

A file starts with one ``meta`` line (who produced it: git commit, model id, backend, precision,
bag) followed by one line per input frame and per other output:

* ``trajectory``  -- the policy's output for the frame stamped ``stamp_ns`` (waypoints, speeds,
  uncertainty, model id, measured latencies);
* ``skip``        -- the frame produced no trajectory (``category``: the policy's Skip category, or
  ``dropped_rate`` when the latest-frame scheduler's rate cap dropped it);
* ``control``     -- a follower command (lock-step replay with ``--follower``);
* ``explanation`` -- a text-node explanation (event kind, text, token ids).

Stamps are integer nanoseconds (the bag's header stamps), so matching is exact; floats are
written with ``repr`` precision, so a value read back is bit-identical to the one written.
Timing fields (``*_ms``) are measurements, excluded from the determinism check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: fields that are wall-clock measurements (never part of a bit-identity or tolerance check)
TIMING_FIELDS = ("inference_ms", "preprocess_ms", "total_ms", "generation_ms", "end_to_end_ms")


@dataclass
class Meta:
    kind: str = "meta"
    tool: str = "minipamayo_ros.replay"
    mode: str = "lockstep"  # lockstep | realtime | golden
    bag: str = ""
    model_id: str = ""
    backend: str = ""  # e.g. onnxruntime
    device: str = ""  # e.g. cpu
    precision: str = ""  # fp32 | fp16 | int8 ...
    git_commit: str = ""
    created: str = ""  # ISO-8601 UTC
    image_topic: str = ""
    odom_topic: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryRecord:
    stamp_ns: int
    sequence: int
    x: list[float]  # [m] forward, body frame at the image stamp
    y: list[float]  # [m] left
    speed: list[float]  # [m/s]
    uncertainty: float  # [m]
    model_id: str = ""
    inference_ms: float = float("nan")  # engine time (wall clock, this machine)
    preprocess_ms: float = float("nan")  # decode + resize + state history
    total_ms: float = float("nan")  # whole pipeline call
    kind: str = "trajectory"


@dataclass
class SkipRecord:
    stamp_ns: int
    category: str  # bad_image | wrong_size | stale_image | no_odometry | ...
    reason: str = ""
    kind: str = "skip"


@dataclass
class ControlRecord:
    stamp_ns: int  # when the command was computed (bag time)
    status: int
    speed: float  # [m/s]
    steering_angle: float  # [rad]
    curvature: float  # [1/m]
    trajectory_stamp_ns: int = 0
    kind: str = "control"


@dataclass
class ExplanationRecord:
    stamp_ns: int  # stamp of the explained trajectory (its image stamp)
    event: int  # Explanation.msg event constant
    text: str
    token_ids: list[int] = field(default_factory=list)
    sequence: int = 0
    situation: int = 0  # what the caption describes (Explanation.msg constants)
    generation_ms: float = float("nan")
    kind: str = "explanation"


Record = TrajectoryRecord | SkipRecord | ControlRecord | ExplanationRecord
_KINDS: dict[str, type] = {
    "trajectory": TrajectoryRecord,
    "skip": SkipRecord,
    "control": ControlRecord,
    "explanation": ExplanationRecord,
}


def _clean(v: Any) -> Any:
    """NaN -> None (JSON has no NaN)."""
    if isinstance(v, float) and v != v:
        return None
    return v


def to_line(rec: Meta | Record) -> str:
    return json.dumps({k: _clean(v) for k, v in asdict(rec).items()}, separators=(",", ":"))


def from_dict(d: dict[str, Any]) -> Meta | Record:
    kind = d.get("kind")
    if kind == "meta":
        known = Meta.__dataclass_fields__
        return Meta(**{k: v for k, v in d.items() if k in known})
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown record kind {kind!r}")
    known = cls.__dataclass_fields__  # type: ignore[attr-defined]
    values = {
        k: (float("nan") if v is None and k in TIMING_FIELDS else v) for k, v in d.items() if k in known
    }
    return cls(**values)


@dataclass
class Outputs:
    """One replay's (or golden's) records, split by kind."""

    meta: Meta
    trajectories: list[TrajectoryRecord] = field(default_factory=list)
    skips: list[SkipRecord] = field(default_factory=list)
    controls: list[ControlRecord] = field(default_factory=list)
    explanations: list[ExplanationRecord] = field(default_factory=list)

    def add(self, rec: Record) -> None:
        {
            "trajectory": self.trajectories,
            "skip": self.skips,
            "control": self.controls,
            "explanation": self.explanations,
        }[rec.kind].append(rec)  # type: ignore[attr-defined]

    def records(self) -> Iterator[Record]:
        """All records in stamp order (trajectories/skips first at equal stamps)."""
        order = {"skip": 0, "trajectory": 0, "control": 1, "explanation": 2}
        items: list[Record] = [*self.trajectories, *self.skips, *self.controls, *self.explanations]
        yield from sorted(items, key=lambda r: (r.stamp_ns, order[r.kind]))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            f.write(to_line(self.meta) + "\n")
            for rec in self.records():
                f.write(to_line(rec) + "\n")

    def deterministic_lines(self) -> list[str]:
        """The records without timing fields: identical run to run for a deterministic replay."""
        lines = []
        for rec in self.records():
            d = {k: v for k, v in asdict(rec).items() if k not in TIMING_FIELDS}
            lines.append(json.dumps(d, separators=(",", ":")))
        return lines


def read_jsonl(path: Path) -> Outputs:
    meta: Meta | None = None
    out: Outputs | None = None
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a replay record: {exc}") from exc
            if isinstance(rec, Meta):
                meta = rec
                out = Outputs(meta)
                continue
            if out is None:
                out = Outputs(meta or Meta(mode="unknown"))
            out.add(rec)
    return out or Outputs(meta or Meta(mode="empty"))


def write_records(path: Path, meta: Meta, records: Iterable[Record]) -> Outputs:
    out = Outputs(meta)
    for r in records:
        out.add(r)
    out.write(path)
    return out
