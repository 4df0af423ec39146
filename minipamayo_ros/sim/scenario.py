"""Scenario types and mixes: which situation a seed gets (``config/scenarios.yaml``).

A *scenario type* (a row of the evaluation tables) says what populates the road: lead vehicles,
oncoming traffic, a cut-in, parked vehicles, pedestrians, signalised intersections, lighting. A
*mix* weights types; a seed's type is drawn from the mix with its own random stream, so it never
depends on other seeds. ``classic`` is the original world (empty road, stop lines, static
obstacles), bit-identical to before the traffic world existed.

Every key is declared once here (a dataclass field; ranges in its metadata). A bad file raises
:class:`ScenarioError` naming the file, the key path and what is allowed::

    config/scenarios.yaml: scenario_types.urban.pedestrians.cout: unknown key; allowed: count,
    crosswalk_fraction, hesitate, speed, stop_halfway, trigger_distance
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

CLASSIC = "classic"
DEFAULT_MIX = CLASSIC
FILE_NAME = "scenarios.yaml"


class ScenarioError(ValueError):
    """A scenario file or selection is invalid (the message names file, key and allowed values)."""


def _range(default: tuple[float, float], lo: float, hi: float, integer: bool = False) -> Any:
    return field(default=default, metadata={"bounds": (lo, hi), "pair": True, "integer": integer})


def _num(default: float, lo: float, hi: float) -> Any:
    return field(default=default, metadata={"bounds": (lo, hi)})


@dataclass(frozen=True)
class RoadSpec:
    """Road generator overrides (``sim.road.RoadConfig``)."""

    max_curvature: float = _num(0.1, 0.01, 0.2)             # [1/m] of the curves between events
    obstacles: tuple[int, int] = _range((0, 0), 0, 4, True)  # classic static obstacles
    stop_lines: tuple[int, int] = _range((0, 0), 0, 4, True)  # plain stop lines with a sign


@dataclass(frozen=True)
class LightingSpec:
    """Weights of the times of day and the camera's exposure / noise variety."""

    day: float = _num(1.0, 0.0, 1000.0)
    dusk: float = _num(0.0, 0.0, 1000.0)
    night: float = _num(0.0, 0.0, 1000.0)
    exposure: float = _num(0.15, 0.0, 0.5)                  # max relative exposure drift (gain 1 +- x)
    noise: tuple[float, float] = _range((1.0, 4.0), 0.0, 12.0)  # per-frame noise sigma [8-bit levels]


@dataclass(frozen=True)
class LeadSpec:
    """Vehicles ahead in our lane (IDM) with speed changes and hard braking."""

    count: tuple[int, int] = _range((1, 1), 0, 4, True)
    gap: tuple[float, float] = _range((18.0, 40.0), 8.0, 150.0)          # [m] initial, ahead of our front
    speed: tuple[float, float] = _range((5.0, 9.0), 1.0, 15.0)           # [m/s] desired speeds
    speed_change_rate: float = _num(0.08, 0.0, 1.0)                      # [1/s] new desired speed
    hard_brake_rate: float = _num(0.04, 0.0, 1.0)                        # [1/s]
    hard_brake_decel: tuple[float, float] = _range((4.0, 6.0), 1.0, 6.0)  # [m/s^2]
    stop_probability: float = _num(0.3, 0.0, 1.0)                        # a hard brake ends standing


@dataclass(frozen=True)
class OncomingSpec:
    """Vehicles in the opposite lane; some drift towards / over the centre line."""

    count: tuple[int, int] = _range((2, 5), 0, 12, True)
    speed: tuple[float, float] = _range((6.0, 10.0), 1.0, 15.0)   # [m/s]
    drift_probability: float = _num(0.4, 0.0, 1.0)
    drift: tuple[float, float] = _range((0.5, 1.6), 0.0, 1.8)     # [m] towards our lane


@dataclass(frozen=True)
class CutInSpec:
    """A merge lane on the right whose vehicle merges into our lane ahead of us."""

    count: tuple[int, int] = _range((1, 1), 0, 3, True)
    time_gap: tuple[float, float] = _range((0.6, 1.5), 0.3, 5.0)    # [s] of our speed at the merge
    speed_delta: tuple[float, float] = _range((0.5, 3.0), -5.0, 5.0)  # [m/s] its speed - ours


@dataclass(frozen=True)
class ParkedSpec:
    """Vehicles parked on the right, partly in our lane; blocking ones drive off after a wait."""

    count: tuple[int, int] = _range((1, 4), 0, 10, True)
    intrusion: tuple[float, float] = _range((0.2, 1.0), 0.0, 1.1)   # [m] into our lane (passable)
    blocking_probability: float = _num(0.2, 0.0, 1.0)              # double-parked: no room to pass


@dataclass(frozen=True)
class PedestrianSpec:
    """Pedestrians crossing at crosswalks and mid-block."""

    count: tuple[int, int] = _range((1, 3), 0, 10, True)
    crosswalk_fraction: float = _num(0.6, 0.0, 1.0)    # share crossing at a zebra crossing
    hesitate: float = _num(0.3, 0.0, 1.0)              # probability: step in, stand 1-2.5 s
    stop_halfway: float = _num(0.2, 0.0, 1.0)          # probability: stand on the centre line 2-6 s
    speed: tuple[float, float] = _range((1.0, 1.6), 0.5, 3.0)              # [m/s] walking
    trigger_distance: tuple[float, float] = _range((22.0, 40.0), 10.0, 80.0)  # [m] our front -> crossing


@dataclass(frozen=True)
class IntersectionSpec:
    """Signalised intersections on the route, straight on or turning, with cross traffic."""

    count: tuple[int, int] = _range((1, 2), 0, 4, True)
    straight: float = _num(1.0, 0.0, 1000.0)                 # turn weights
    left: float = _num(1.0, 0.0, 1000.0)
    right: float = _num(1.0, 0.0, 1000.0)
    green: tuple[float, float] = _range((6.0, 14.0), 2.0, 60.0)        # [s]
    amber: tuple[float, float] = _range((3.0, 3.0), 1.0, 6.0)          # [s]
    all_red: tuple[float, float] = _range((1.0, 2.0), 0.5, 5.0)        # [s]
    cross_green: tuple[float, float] = _range((5.0, 10.0), 2.0, 60.0)  # [s]
    cross_traffic: tuple[int, int] = _range((0, 2), 0, 4, True)        # vehicles per intersection
    right_radius: tuple[float, float] = _range((5.0, 8.0), 5.0, 30.0)  # [m] ego-lane radius of a right turn
    left_radius: tuple[float, float] = _range((9.0, 13.0), 7.5, 30.0)  # [m] of a left turn


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario type. Populations left out (None) do not appear."""

    name: str
    description: str = ""
    classic: bool = False
    road: RoadSpec = field(default_factory=RoadSpec)
    lighting: LightingSpec = field(default_factory=LightingSpec)
    lead_vehicles: LeadSpec | None = None
    oncoming: OncomingSpec | None = None
    cut_in: CutInSpec | None = None
    parked: ParkedSpec | None = None
    pedestrians: PedestrianSpec | None = None
    intersections: IntersectionSpec | None = None


@dataclass(frozen=True)
class ScenarioMix:
    """Weights over scenario types; :meth:`for_seed` is the type of a seed."""

    name: str
    types: tuple[ScenarioSpec, ...]
    weights: tuple[float, ...]

    def for_seed(self, seed: int) -> ScenarioSpec:
        if len(self.types) == 1:
            return self.types[0]
        rng = np.random.default_rng([int(seed), 0x4D_49_58])  # "MIX"
        w = np.asarray(self.weights, dtype=np.float64)
        return self.types[int(rng.choice(len(w), p=w / w.sum()))]

    @property
    def is_classic(self) -> bool:
        return all(t.classic for t in self.types)


@dataclass(frozen=True)
class ScenarioCatalog:
    """A parsed scenario file: its types and mixes."""

    path: str
    types: Mapping[str, ScenarioSpec]
    mixes: Mapping[str, Mapping[str, float]]

    def mix(self, name: str = DEFAULT_MIX, scenario: str = "") -> ScenarioMix:
        """The mix ``name``, or (``scenario`` given) the one-type mix of that type."""
        if scenario:
            if scenario not in self.types:
                raise ScenarioError(f"{self.path}: unknown scenario type {scenario!r}; allowed: "
                                    f"{', '.join(self.types)}")
            return ScenarioMix(scenario, (self.types[scenario],), (1.0,))
        if name not in self.mixes:
            raise ScenarioError(f"{self.path}: unknown scenario mix {name!r}; allowed: "
                                f"{', '.join(self.mixes)}")
        weights = self.mixes[name]
        return ScenarioMix(name, tuple(self.types[t] for t in weights), tuple(weights.values()))


POPULATIONS: dict[str, type] = {
    "road": RoadSpec, "lighting": LightingSpec, "lead_vehicles": LeadSpec, "oncoming": OncomingSpec,
    "cut_in": CutInSpec, "parked": ParkedSpec, "pedestrians": PedestrianSpec,
    "intersections": IntersectionSpec,
}


def _fail(path: str, key: str, message: str) -> ScenarioError:
    return ScenarioError(f"{path}: {key}: {message}")


def _number(path: str, key: str, value: Any, integer: bool, bounds: tuple[float, float]) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(float(value)):
        raise _fail(path, key, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise _fail(path, key, f"{value} outside the allowed range {lo:g}..{hi:g}")
    return int(value) if integer else float(value)


def _spec(cls: type, data: Any, path: str, key: str) -> Any:
    """A spec dataclass from a mapping (every key checked)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _fail(path, key, f"expected a mapping of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        f = fields.get(name)
        if f is None:
            raise _fail(path, f"{key}.{name}", f"unknown key; allowed: {', '.join(fields)}")
        meta, where = f.metadata, f"{key}.{name}"
        if meta.get("pair"):
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise _fail(path, where, f"expected [min, max], got {value!r}")
            lo, hi = (_number(path, where, v, meta["integer"], meta["bounds"]) for v in value)
            if lo > hi:
                raise _fail(path, where, f"min {lo} > max {hi}")
            values[name] = (lo, hi)
        else:
            values[name] = _number(path, where, value, False, meta["bounds"])
    return cls(**values)


def _scenario(name: str, data: Any, path: str) -> ScenarioSpec:
    key = f"scenario_types.{name}"
    if not isinstance(data, Mapping):
        raise _fail(path, key, f"expected a mapping, got {type(data).__name__}")
    allowed = ("description", "classic", *POPULATIONS)
    values: dict[str, Any] = {"name": name}
    for k, v in data.items():
        if k not in allowed:
            raise _fail(path, f"{key}.{k}", f"unknown key; allowed: {', '.join(allowed)}")
        if k == "description":
            values[k] = str(v)
        elif k == "classic":
            if not isinstance(v, bool):
                raise _fail(path, f"{key}.classic", f"expected true or false, got {v!r}")
            values[k] = v
        else:
            values[k] = _spec(POPULATIONS[k], v, path, f"{key}.{k}")
    spec = ScenarioSpec(**values)
    if spec.classic and set(data) - {"description", "classic"}:
        extra = sorted(set(data) - {"description", "classic"})
        raise _fail(path, f"{key}.{extra[0]}", "a classic type takes no other keys (it is the original "
                    "world); allowed: description, classic")
    light = spec.lighting
    if not spec.classic and light.day + light.dusk + light.night <= 0.0:
        raise _fail(path, f"{key}.lighting", "day + dusk + night weights must be > 0")
    return spec


def parse_catalog(data: Any, path: str) -> ScenarioCatalog:
    """Validate a loaded scenario file (``path`` only names it in errors)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{path}: expected a mapping with keys scenario_types, mixes")
    for k in data:
        if k not in ("scenario_types", "mixes"):
            raise _fail(path, str(k), "unknown key; allowed: scenario_types, mixes")
    raw_types = data.get("scenario_types")
    if not isinstance(raw_types, Mapping) or not raw_types:
        raise _fail(path, "scenario_types", "expected a non-empty mapping of scenario types")
    types = {str(n): _scenario(str(n), v, path) for n, v in raw_types.items()}
    raw_mixes = data.get("mixes")
    if not isinstance(raw_mixes, Mapping) or not raw_mixes:
        raise _fail(path, "mixes", "expected a non-empty mapping of mixes")
    mixes: dict[str, dict[str, float]] = {}
    for m, weights in raw_mixes.items():
        key = f"mixes.{m}"
        if not isinstance(weights, Mapping) or not weights:
            raise _fail(path, key, "expected a non-empty mapping of scenario type: weight")
        w: dict[str, float] = {}
        for t, v in weights.items():
            if t not in types:
                raise _fail(path, f"{key}.{t}", f"unknown scenario type; allowed: {', '.join(types)}")
            w[str(t)] = float(_number(path, f"{key}.{t}", v, False, (0.0, 1e6)))
        if sum(w.values()) <= 0.0:
            raise _fail(path, key, "weights must sum to > 0")
        mixes[str(m)] = {t: x for t, x in w.items() if x > 0.0}
    return ScenarioCatalog(path, types, mixes)


def default_path() -> Path:
    from minipamayo_ros.params import config_dir

    return config_dir() / FILE_NAME


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ScenarioCatalog:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from None
    return parse_catalog(data, path)


def load_catalog(path: str | Path | None = None) -> ScenarioCatalog:
    """Parse and validate a scenario file ('' / None: the package's ``config/scenarios.yaml``)."""
    p = Path(path) if path else default_path()
    if not p.is_file():
        raise ScenarioError(f"{p}: scenario file not found")
    return _load_cached(str(p), p.stat().st_mtime_ns)


def load_mix(mix: str = DEFAULT_MIX, scenario: str = "", path: str | Path | None = None) -> ScenarioMix:
    """The mix ``mix`` of the scenario file, or the one-type mix of ``scenario`` when given."""
    return load_catalog(path).mix(mix, scenario)
