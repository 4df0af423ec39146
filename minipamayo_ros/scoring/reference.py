"""The expert's progress on a run's world: the reference of the score's ego-progress term.

The reference is the simulator's own autopilot (``control_source: expert``: the expert's command
every ``sim.session.EXPERT_PERIOD`` on the true state, no stack, no latency) driving a fresh
world of the same seed, scenario, road length and cruise speed (``frames.WorldId``) for the
scored window's length from standstill, like NAVSIM's PDM-Closed reference. It lives in the sim
layer's terms so that every path that scores -- the offline evaluator, the demo report, the soak,
a bag -- uses the same number. Deterministic; about 1-10 s of CPU per minute of episode (no
rendering), cached per process.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from minipamayo_ros.scoring.frames import WorldId
from minipamayo_ros.sim.scenario import CLASSIC, load_mix
from minipamayo_ros.sim.session import EXPERT_PERIOD
from minipamayo_ros.sim.world import World, WorldConfig


def world_config(world: WorldId, base: WorldConfig | None = None) -> WorldConfig:
    """The core configuration of a run's world (``base``'s other fields, default WorldConfig())."""
    cfg = base or WorldConfig()
    return replace(cfg, road=replace(cfg.road, length=world.road_length),
                   expert=replace(cfg.expert, cruise_speed=world.cruise_speed),
                   scenarios=None if world.scenario == CLASSIC else load_mix(scenario=world.scenario))


def autopilot_drive(world: WorldId, seconds: float) -> World:
    """The world after the autopilot drove it for ``seconds`` [s] (or to the road's end)."""
    w = World(world.seed, world_config(world))
    steer = speed = 0.0
    next_cmd = 0.0
    while w.time < seconds - 1e-9 and not w.done:
        if w.time + 1e-9 >= next_cmd:
            steer, speed = w.expert_command()
            next_cmd = w.time + EXPERT_PERIOD
        w.step(steer, speed, w.config.physics_dt)
    return w


@lru_cache(maxsize=256)
def _progress(world: WorldId, centiseconds: int) -> float:
    start = World(world.seed, world_config(world)).ego_state().s
    return max(0.0, autopilot_drive(world, centiseconds / 100.0).ego_state().s - start)


def expert_progress(world: WorldId, seconds: float) -> float:
    """[m] route distance the autopilot covers in ``seconds`` from the start of ``world``."""
    return _progress(world, int(round(max(0.0, seconds) * 100)))
