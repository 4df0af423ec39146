"""Scene frames: the ground truth a run is scored from, identical offline, over DDS and in a bag.

A :class:`SceneFrame` is one sample of the simulator's ground truth every ``FRAME_PERIOD`` of
episode time: the scene (``sim.scene.SceneState``: ego and agent footprints, speeds, lane flags,
lights, stop lines, crosswalks), the world's cumulative per-run facts at that instant
(``sim.metrics.EpisodeMetrics``: collisions and who was at fault, violations, minimum
time-to-collision, stalls -- measured at the physics rate, which frames could not do) and the
incidents that happened since the previous frame. The simulator node publishes each frame as
JSON on ``sim/ground_truth/scene`` (``std_msgs/String``, reliable), the recorder and the bag keep it, and
the offline closed loop takes the very same text: every path decodes the same bytes, so the
scores agree exactly (floats are rounded to ``DECIMALS`` once, when the frame is made).

JSON layout (version 1, SI units, world / ``odom`` frame; ``null`` for a NaN)::

    {"v": 1, "stamp": 12.35, "episode": 0,
     "world": {"seed": 1000, "scenario": "cut_in", "road_length": 774.0, "cruise_speed": 8.0},
     "scene": {"time": 11.35, "scenario": "cut_in", "lane_width": 3.5, "ego": {AGENT},
               "agents": [{AGENT}, ...], "lights": [...], "stop_lines": [...], "crosswalks": [...]},
     "metrics": {"collisions": 0, "at_fault_collisions": 0, "min_ttc_s": 3.2, ...},
     "incidents": [{"time": 11.31, "kind": "collision", "agent_id": 4, ...}]}

    AGENT = {"id", "kind": "VEHICLE", "role": "LEAD", "x", "y", "yaw", "length", "width", "height",
             "speed", "accel", "s", "d", "in_own_lane", "in_ego_lane", "cut_in_time", "braking",
             "indicator"}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from minipamayo_ros.sim.agents.kinematics import AgentKind, AgentState, Role
from minipamayo_ros.sim.agents.objects import LightState
from minipamayo_ros.sim.metrics import Incident
from minipamayo_ros.sim.scene import CrosswalkView, LightView, SceneState
from minipamayo_ros.sim.world import World

VERSION = 1
TOPIC = "sim/ground_truth/scene"  # relative: /sim/ground_truth/scene outside a namespace
SCENE_FILE = "scene.jsonl"        # a run's frames in a report folder, one JSON text per line
FRAME_PERIOD = 0.05   # [s] episode time between frames (the camera's 20 Hz)
DECIMALS = 5          # floats are rounded to 10 um / 10 us once, when the frame is made

_ENUMS: dict[type, dict[str, type[IntEnum]]] = {
    AgentState: {"kind": AgentKind, "role": Role},
    LightView: {"state": LightState, "cross_state": LightState},
}


@dataclass(frozen=True)
class WorldId:
    """What rebuilds the run's world (the expert reference, the road of a drawing)."""

    seed: int
    scenario: str            # scenario type ("classic", "cut_in", ...)
    road_length: float       # [m]
    cruise_speed: float      # [m/s] the expert's


@dataclass(frozen=True)
class SceneFrame:
    """One ground-truth sample (see module doc)."""

    stamp: float                                 # [s] node clock (sim time; offline = episode time)
    episode: int                                 # episode counter of the simulator (0 offline)
    world: WorldId
    scene: SceneState                            # scene.time: episode time [s]
    metrics: Mapping[str, float] = field(default_factory=dict)  # cumulative EpisodeMetrics
    incidents: tuple[Incident, ...] = ()         # new since the previous frame of the episode

    @property
    def time(self) -> float:
        """[s] episode time."""
        return self.scene.time


def _plain(value: Any) -> Any:
    """JSON-ready value: dataclasses -> dicts, enums -> names, floats rounded, NaN -> None."""
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, DECIMALS) if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return float(round(float(value), DECIMALS))  # numpy scalars


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    enums = _ENUMS.get(cls, {})
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        if f.name in enums:
            v = enums[f.name][v]
        elif v is None and f.name in ("s", "d"):
            v = math.nan
        kwargs[f.name] = v
    return cls(**kwargs)


def to_json(frame: SceneFrame) -> str:
    """The frame as one compact JSON text (the ``std_msgs/String`` payload)."""
    return json.dumps({"v": VERSION, **_plain(frame)}, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> SceneFrame:
    """Decode :func:`to_json`; ValueError naming what is wrong for anything else."""
    try:
        d = json.loads(text)
        if d.get("v") != VERSION:
            raise ValueError(f"scene frame version {d.get('v')!r}, expected {VERSION}")
        s = d["scene"]
        scene = SceneState(
            time=s["time"], scenario=s["scenario"], lane_width=s["lane_width"],
            ego=_build(AgentState, s["ego"]),
            agents=tuple(_build(AgentState, a) for a in s["agents"]),
            lights=tuple(_build(LightView, x) for x in s.get("lights", ())),
            stop_lines=tuple(s.get("stop_lines", ())),
            crosswalks=tuple(_build(CrosswalkView, x) for x in s.get("crosswalks", ())))
        return SceneFrame(stamp=d["stamp"], episode=d["episode"], world=_build(WorldId, d["world"]),
                          scene=scene, metrics=dict(d.get("metrics", {})),
                          incidents=tuple(_build(Incident, x) for x in d.get("incidents", ())))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a scene frame: {type(e).__name__}: {e}") from e


def write_frames(path: Path, texts: Iterable[str]) -> None:
    """JSON texts of frames, one per line."""
    path.write_text("".join(t + "\n" for t in texts))


def load_frames(path: Path) -> list[SceneFrame]:
    """The frames of a :func:`write_frames` file ([] if there is none)."""
    if not path.exists():
        return []
    return [from_json(line) for line in path.read_text().splitlines() if line.strip()]


def iter_episodes(path: Path) -> Iterator[list[SceneFrame]]:
    """The frames of a :func:`write_frames` file one episode at a time (streamed: a long soak's
    file never has to fit in memory at once)."""
    episode: list[SceneFrame] = []
    with path.open() as f:
        for line in f:
            if not line.strip():
                continue
            frame = from_json(line)
            if episode and frame.episode != episode[-1].episode:
                yield episode
                episode = []
            episode.append(frame)
    if episode:
        yield episode


def world_id(world: World) -> WorldId:
    return WorldId(seed=world.seed, scenario=world.scenario_name, road_length=world.config.road.length,
                   cruise_speed=world.config.expert.cruise_speed)


class FrameSampler:
    """Makes the frames of a running world: one per ``period`` of episode time (call it after every
    step; a new episode -- another world or episode number -- starts over)."""

    def __init__(self, period: float = FRAME_PERIOD) -> None:
        self.period = period
        self._world: World | None = None
        self._episode = -1
        self._next = 0.0
        self._sent = 0

    def due_in(self, world: World, episode: int = 0) -> float:
        """[s] of episode time until the next frame of ``world`` is due (0: now)."""
        if world is not self._world or episode != self._episode:
            return 0.0
        return max(0.0, self._next - world.time)

    def sample(self, world: World, stamp: float | None = None, episode: int = 0) -> str | None:
        """The JSON frame if one is due at ``world.time`` (else None); ``stamp`` = node clock [s]
        (default: episode time)."""
        if world is not self._world or episode != self._episode:
            self._world, self._episode, self._next, self._sent = world, episode, 0.0, 0
        if world.time + 1e-9 < self._next:
            return None
        self._next = (math.floor(world.time / self.period + 1e-6) + 1) * self.period
        incidents = world.incidents()
        new, self._sent = incidents[self._sent:], len(incidents)
        frame = SceneFrame(stamp=world.time if stamp is None else stamp, episode=episode,
                           world=world_id(world), scene=world.scene_state(),
                           metrics=world.metrics().as_dict(), incidents=tuple(new))
        return to_json(frame)
