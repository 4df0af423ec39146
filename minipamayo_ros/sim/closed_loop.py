"""Closed-loop evaluation without ROS: a policy drives the simulated car through the real follower.

The loop reproduces the deployed data flow on sim time, deterministically and far faster than
real time: camera frames at ``policy_rate_hz`` (through ``image_preprocess.resize_to_model``),
the odometry history (``state_features.state_history`` on 50 Hz odometry), the policy's 20
waypoints delivered ``latency`` seconds after the image stamp, and ``control.follower.Follower``
(pure pursuit with motion compensation, 50 Hz) commanding the vehicle. Ground-truth metrics come
from :mod:`minipamayo_ros.sim.metrics`.

A policy is any callable ``policy(obs) -> (points (20, 2) [m], speeds (20,) [m/s])`` taking an
:class:`Observation`; ``policy=None`` uses the expert's plan (an oracle: the reference figures).

CLI::

    PYTHONPATH=. python -m minipamayo_ros.sim.closed_loop --seeds 100:120 \
        [--policy manifest:engines/minipamayo-tiny-policy.manifest.json | --policy pkg.mod:factory]

``manifest:PATH`` loads the model exactly as the policy node does (ONNX Runtime here);
``factory(image_size) -> policy`` builds any other policy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import Follower
from minipamayo_ros.image_preprocess import resize_to_model
from minipamayo_ros.pose_history import PoseHistory
from minipamayo_ros.sim.metrics import EpisodeMetrics
from minipamayo_ros.sim.world import World, WorldConfig
from minipamayo_ros.state_features import state_history
from minipamayo_ros.trajectory import PlannedTrajectory

ODOM_DT = 0.02  # [s] 50 Hz odometry, as the simulator node publishes


@dataclass(frozen=True)
class Observation:
    """What the policy node would have at an image stamp."""

    stamp: float                       # [s] image stamp (sim time)
    image: NDArray[np.uint8]           # (H, W, 3) RGB at the model's input size
    state: NDArray[np.float32]         # (10, 3) odometry history features


PolicyFn = Callable[[Observation], tuple[NDArray[np.floating], NDArray[np.floating]]]
#: called with the world and the observation at every policy call, before the world moves on
#: (e.g. to record the expert's labels for the states the policy visits: ``sim.dataset``)
ObserverFn = Callable[[World, Observation], None]


@dataclass(frozen=True)
class ClosedLoopSettings:
    policy_rate_hz: float = 10.0       # camera frames handed to the policy
    latency: float = 0.1               # [s] image stamp -> trajectory at the follower
    image_size: tuple[int, int] = (128, 128)  # model input (height, width)
    max_seconds: float = 90.0          # [s] sim time limit per episode
    follower: FollowerConfig = field(default_factory=FollowerConfig)


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    finished: bool                     # reached the end of the road within max_seconds
    metrics: EpisodeMetrics
    policy_calls: int
    rejected_trajectories: int         # refused by the follower (invalid)
    policy_wall_ms_mean: float         # wall time per policy call, rendering excluded (this machine)
    path: NDArray[np.float64] | None = None  # (N, 5) t [s], x, y [m], speed [m/s], cross-track [m] at 10 Hz


def run_episode(seed: int, policy: PolicyFn | None = None, world_config: WorldConfig | None = None,
                settings: ClosedLoopSettings | None = None, record_path: bool = False,
                observer: ObserverFn | None = None) -> EpisodeResult:
    """Drive one episode of ``seed`` with ``policy`` (None: the expert oracle) and the follower.

    ``record_path`` keeps the driven path (10 Hz) in the result, e.g. for plots; ``observer`` sees
    every observation handed to the policy (with the world at that instant).
    """
    st = settings or ClosedLoopSettings()
    world = World(seed, world_config or WorldConfig())
    follower = Follower(st.follower)
    history = PoseHistory(max_age=3.0)
    phys = world.config.physics_dt
    n_odom = max(1, round(ODOM_DT / phys))
    n_follow = max(1, round(st.follower.period / phys))
    n_policy = max(1, round(1.0 / (st.policy_rate_hz * phys)))
    pending: deque[tuple[float, PlannedTrajectory]] = deque()
    steer, speed = 0.0, 0.0
    calls = rejected = 0
    wall = 0.0
    k = 0
    n_trace = max(1, round(0.1 / phys))
    trace: list[tuple[float, float, float, float, float]] = []
    while not world.done and world.time < st.max_seconds:
        world.step(steer, speed, phys)
        k += 1
        now = world.time
        if k % n_odom == 0:
            sample = world.odometry()
            history.add(sample)
            follower.add_odometry(sample)
        if k % n_policy == 0:
            state = state_history(history, now)
            if state is not None:
                obs = None
                if policy is not None or observer is not None:
                    obs = Observation(now, resize_to_model(world.render(), st.image_size), state)
                    if observer is not None:
                        observer(world, obs)
                t0 = time.perf_counter()
                out: tuple[NDArray[np.floating], NDArray[np.floating]]
                if policy is None:
                    plan = world.expert_plan()
                    out = (plan.points, plan.speeds)
                else:
                    out = policy(obs)  # type: ignore[arg-type]
                points, speeds = out
                wall += time.perf_counter() - t0
                calls += 1
                traj = PlannedTrajectory(stamp=now, points=np.asarray(points, np.float64),
                                         speeds=np.asarray(speeds, np.float64), sequence=calls)
                pending.append((now + st.latency, traj))
        while pending and pending[0][0] <= now + 1e-9:
            _, traj = pending.popleft()
            if follower.set_trajectory(traj, now) is not None:
                rejected += 1
        if k % n_follow == 0:
            cmd = follower.update(now)
            steer, speed = cmd.steering_angle, cmd.speed
        if record_path and k % n_trace == 0:
            p = world.state.pose
            trace.append((now, p.x, p.y, world.state.speed, world.proj.d))
    return EpisodeResult(seed=int(seed), finished=world.done, metrics=world.metrics(), policy_calls=calls,
                         rejected_trajectories=rejected,
                         policy_wall_ms_mean=1e3 * wall / calls if calls else float("nan"),
                         path=np.array(trace) if record_path else None)


def summarize_results(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Aggregate figures over episodes (rates per km of driving)."""
    if not results:
        return {}
    m = [r.metrics for r in results]
    km = max(sum(x.distance_m for x in m) / 1000.0, 1e-9)
    return {
        "episodes": len(results),
        "finished_fraction": sum(r.finished for r in results) / len(results),
        "distance_km": km,
        "lane_departures": sum(x.lane_departures for x in m),
        "lane_departures_per_km": sum(x.lane_departures for x in m) / km,
        "collisions": sum(x.collisions for x in m),
        "stop_line_violations": sum(x.stop_line_violations for x in m),
        "cross_track_rms_m": math.sqrt(float(np.mean([x.cross_track_rms_m**2 for x in m]))),
        "cross_track_max_m": max(x.cross_track_max_m for x in m),
        "mean_speed_mps": float(np.mean([x.mean_speed_mps for x in m])),
        "max_lateral_accel_mps2": max(x.max_lateral_accel_mps2 for x in m),
        "rejected_trajectories": sum(r.rejected_trajectories for r in results),
    }


def manifest_policy(manifest_path: str, backend: str = "onnxruntime", threads: int = 1) -> PolicyFn:
    """A policy from a model manifest, loaded by the policy node's own loader (same checks/backends)."""
    from minipamayo_ros.inference import BackendOptions
    from minipamayo_ros.policy.engine import load_policy

    options = BackendOptions(backend=backend, intra_op_threads=threads)
    manifest, model, io = load_policy(manifest_path, options)
    image_name, state_name = (s.name for s in manifest.inputs[:2])

    def policy(obs: Observation) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
        out = model.infer({image_name: obs.image[None], state_name: obs.state[None]})
        return out["waypoints"][0], out["speeds"][0]

    policy.image_size = io.image_size  # type: ignore[attr-defined]
    return policy


def _load_policy(spec: str, image_size: tuple[int, int]) -> PolicyFn | None:
    if spec == "expert":
        return None
    if spec.startswith("manifest:"):
        return manifest_policy(spec.removeprefix("manifest:"))
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"--policy must be 'expert', 'manifest:PATH' or 'module:factory', got {spec!r}")
    return getattr(importlib.import_module(module), name)(image_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Closed-loop evaluation in the simulator (no ROS)")
    parser.add_argument("--seeds", default="100:110", help="a:b (b exclusive) or 1,2,3")
    parser.add_argument("--policy", default="expert",
                        help="'expert' (oracle), 'manifest:engines/<model>.manifest.json' or module:factory")
    parser.add_argument("--latency", type=float, default=0.1, help="image stamp -> trajectory [s]")
    parser.add_argument("--rate", type=float, default=10.0, help="policy rate [Hz]")
    parser.add_argument("--image-size", type=int, nargs="+", default=[128])
    parser.add_argument("--duration", type=float, default=ClosedLoopSettings.max_seconds,
                        help="sim seconds per episode at most [s]")
    parser.add_argument("--json", type=str, default="", help="write per-episode results here")
    args = parser.parse_args(argv)
    a, _, b = args.seeds.partition(":")
    seeds = list(range(int(a), int(b))) if b else [int(s) for s in args.seeds.split(",")]
    size = (args.image_size[0], args.image_size[-1])
    settings = ClosedLoopSettings(policy_rate_hz=args.rate, latency=args.latency, image_size=size,
                                  max_seconds=args.duration)
    policy = _load_policy(args.policy, size)
    results = []
    for i, seed in enumerate(seeds):
        r = run_episode(seed, policy, settings=settings)
        results.append(r)
        m = r.metrics
        print(f"[{i + 1}/{len(seeds)}] seed {seed}: {'finished' if r.finished else 'NOT finished'}, "
              f"{m.distance_m:.0f} m, cte rms {m.cross_track_rms_m:.3f} m, departures {m.lane_departures}, "
              f"collisions {m.collisions}, stop violations {m.stop_line_violations}", file=sys.stderr)
    summary = summarize_results(results)
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "episodes": [
                {**{k: v for k, v in asdict(r).items() if k != "path"}, "metrics": r.metrics.as_dict()}
                for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
