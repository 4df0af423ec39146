"""The closed loop without ROS: a policy drives the simulated car through the real follower.

The loop reproduces the deployed data flow on sim time, deterministically and far faster than
real time: camera frames (``World.render``, the simulator node's image) at ``policy_rate_hz``,
odometry at 50 Hz to the policy and the follower, the policy's trajectory delivered ``latency``
seconds after its image stamp, and ``control.follower.Follower`` (pure pursuit with motion
compensation) commanding the vehicle at its own rate. Ground-truth metrics: ``sim.metrics``.

A learned policy runs through :class:`PipelinePolicy`, i.e. the policy node's own
``policy.pipeline.PolicyPipeline`` built from the node's parameters (``PolicyConfig``): the same
decode/resize, state features, backend, output parsing and output validation, so what is
evaluated here is what the node deploys (``test/test_evaluation_identity.py`` proves it over DDS).
Oracles (:class:`ExpertPolicy`) read the ground truth instead.

CLI (a quick look at a few seeds; ``evaluation.evaluate`` is the multi-seed evaluator)::

    python -m minipamayo_ros.evaluation.closed_loop --seeds 1000:1005 \
        [--policy engines/minipamayo-tiny-policy.manifest.json | --policy expert]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus, Follower
from minipamayo_ros.inference import Tensors
from minipamayo_ros.policy.config import DEFAULT_MANIFEST, PolicyConfig
from minipamayo_ros.policy.pipeline import Frame, PolicyPipeline, Skip, create_pipeline
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.plan_checks import PLAN_CHECKS, Plan, PlanLimits, limit_use
from minipamayo_ros.safety.trajectory_input import TrajectoryFields
from minipamayo_ros.scoring.frames import FrameSampler
from minipamayo_ros.seeds import parse_seeds
from minipamayo_ros.sim.metrics import EpisodeMetrics
from minipamayo_ros.sim.road import Road
from minipamayo_ros.sim.scenario import CLASSIC, ScenarioError, load_mix
from minipamayo_ros.sim.world import World, WorldConfig
from minipamayo_ros.trajectory import PlannedTrajectory

ODOM_DT = 0.02  # [s] 50 Hz odometry, as the simulator node publishes


class Observation:
    """What exists at an image stamp: the camera frame (rendered on first use) and the world.

    A learned policy may only use :meth:`camera` (and the odometry it was given); ``world`` is
    the ground truth, for oracles and for labelling (DAgger).
    """

    def __init__(self, stamp: float, world: World) -> None:
        self.stamp = stamp      # [s] image stamp (sim time)
        self.world = world
        self._image: NDArray[np.uint8] | None = None

    def camera(self) -> NDArray[np.uint8]:
        """(H, W, 3) uint8 RGB at the camera's resolution, as the simulator node publishes it."""
        if self._image is None:
            self._image = self.world.render()
        return self._image


class Policy(Protocol):
    """Anything that drives: odometry in, a trajectory (or the reason there is none) per frame."""

    def start(self) -> None:
        """A new episode begins (sim time restarts at 0)."""

    def add_odometry(self, sample: OdometrySample) -> None: ...

    def __call__(self, obs: Observation) -> PlannedTrajectory | Skip: ...


class PipelinePolicy:
    """The policy node's pipeline as a closed-loop policy (see module doc)."""

    uses_camera = True

    def __init__(self, pipeline: PolicyPipeline) -> None:
        self.pipeline = pipeline
        self.last_inputs: Tensors | None = None  # the model inputs of the last trajectory

    @classmethod
    def from_config(cls, cfg: PolicyConfig) -> PipelinePolicy:
        """Load the model exactly as the policy node does with parameters ``cfg``."""
        return cls(create_pipeline(cfg))

    def start(self) -> None:
        self.pipeline.restart()
        self.last_inputs = None

    def add_odometry(self, sample: OdometrySample) -> None:
        self.pipeline.add_odometry(sample)

    def __call__(self, obs: Observation) -> PlannedTrajectory | Skip:
        # inference starts at the image stamp: the latency is modelled by the loop's ``latency``
        result = self.pipeline.run(Frame(stamp=obs.stamp, decode=obs.camera, description="sim camera",
                                         received=obs.stamp), lambda: obs.stamp)
        if isinstance(result, Skip):
            return result
        self.last_inputs = result.inputs
        return result.output.trajectory


class ExpertPolicy:
    """The expert's plan from the true state (an oracle: the reference figures)."""

    uses_camera = False

    def __init__(self) -> None:
        self._sequence = 0

    def start(self) -> None:
        self._sequence = 0

    def add_odometry(self, sample: OdometrySample) -> None:
        pass

    def __call__(self, obs: Observation) -> PlannedTrajectory | Skip:
        plan = obs.world.expert_plan()
        self._sequence += 1
        return PlannedTrajectory(stamp=obs.stamp, points=np.asarray(plan.points, np.float64),
                                 speeds=np.asarray(plan.speeds, np.float64), sequence=self._sequence)


@dataclass(frozen=True)
class ClosedLoopSettings:
    policy_rate_hz: float = 10.0       # camera frames handed to the policy
    latency: float = 0.1               # [s] image stamp -> trajectory at the follower
    max_seconds: float = 90.0          # [s] sim time limit per episode
    follower: FollowerConfig = field(default_factory=FollowerConfig)


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    finished: bool                     # reached the end of the road within max_seconds
    metrics: EpisodeMetrics
    policy_calls: int                  # frames handed to the policy
    trajectories: int                  # trajectories it produced
    skipped: dict[str, int]            # frames without a trajectory, by Skip category
    rejected_trajectories: int         # refused by the follower (invalid)
    policy_wall_ms_mean: float         # wall time per policy call, rendering excluded (this machine)
    #: per plan check (safety.plan_checks): the closest any trajectory came to its limit (1 = at it)
    plan_limit_use: dict[str, float] = field(default_factory=dict)
    #: per follower tick: t [s], x, y [m], speed [m/s], cross-track [m] (left +), station s [m],
    #: 1.0 if the follower was TRACKING a trajectory else 0.0
    path: NDArray[np.float64] | None = None
    scenario: str = "classic"          # the seed's scenario type (``sim.scenario``)
    #: contacts and rule events (``sim.metrics.Incident.as_dict``)
    incidents: tuple[dict[str, object], ...] = ()
    #: [s] episode time the follower got its first trajectory (the driver took over)
    first_trajectory_s: float | None = None
    #: the run's ground truth as JSON scene frames (``scoring.frames``; ``record_frames``)
    frames: list[str] | None = None


def run_episode(seed: int, policy: Policy, world_config: WorldConfig | None = None,
                settings: ClosedLoopSettings | None = None, record_path: bool = False,
                road: Road | None = None, record_frames: bool = False) -> EpisodeResult:
    """Drive one episode of ``seed`` with ``policy`` and the follower.

    ``record_path`` keeps the driven path (every follower tick) in the result, e.g. for plots and
    tracking figures; ``road`` replaces the seed's road (e.g. ``sim.road.reference_road``);
    ``record_frames`` keeps the scene frames the run is scored from (``scoring``).
    """
    st = settings or ClosedLoopSettings()
    world = World(seed, world_config or WorldConfig(), road)
    follower = Follower(st.follower)
    policy.start()
    uses_camera = bool(getattr(policy, "uses_camera", False))
    phys = world.config.physics_dt
    n_odom = max(1, round(ODOM_DT / phys))
    n_follow = max(1, round(st.follower.period / phys))
    n_policy = max(1, round(1.0 / (st.policy_rate_hz * phys)))
    pending: deque[tuple[float, PlannedTrajectory]] = deque()
    skipped: Counter[str] = Counter()
    steer, speed = 0.0, 0.0
    calls = produced = rejected = 0
    limits = st.follower.trajectory_limits(st.follower.base_frame).plan
    limit_use: dict[str, float] = {}
    wall = 0.0
    k = 0
    trace: list[tuple[float, ...]] = []
    sampler = FrameSampler() if record_frames else None
    frames = [sampler.sample(world) or ""] if sampler else None
    first: float | None = None
    while not world.done and world.time < st.max_seconds:
        world.step(steer, speed, phys)
        k += 1
        now = world.time
        if sampler is not None and (text := sampler.sample(world)) is not None:
            frames.append(text)  # type: ignore[union-attr]
        if k % n_odom == 0:
            sample = world.odometry()
            policy.add_odometry(sample)
            follower.add_odometry(sample)
        if k % n_policy == 0:
            obs = Observation(now, world)
            if uses_camera:
                obs.camera()  # rendering is the camera's time, not the policy's
            t0 = time.perf_counter()
            out = policy(obs)
            wall += time.perf_counter() - t0
            calls += 1
            if isinstance(out, Skip):
                skipped[out.category] += 1
            else:
                produced += 1
                pending.append((now + st.latency, out))
                for check, use in plan_limit_use(out, limits).items():
                    limit_use[check] = max(limit_use.get(check, 0.0), use)
        while pending and pending[0][0] <= now + 1e-9:
            _, traj = pending.popleft()
            if follower.set_trajectory(traj, now) is not None:
                rejected += 1
            elif first is None:
                first = now
        if k % n_follow == 0:
            cmd = follower.update(now)
            steer, speed = cmd.steering_angle, cmd.speed
            if record_path:
                p = world.state.pose
                trace.append((now, p.x, p.y, world.state.speed, world.proj.d, world.proj.s,
                              float(cmd.status == ControlStatus.TRACKING)))
    return EpisodeResult(seed=int(seed), finished=world.done, metrics=world.metrics(), policy_calls=calls,
                         trajectories=produced, skipped=dict(skipped), rejected_trajectories=rejected,
                         policy_wall_ms_mean=1e3 * wall / calls if calls else float("nan"),
                         plan_limit_use=limit_use, path=np.array(trace) if record_path else None,
                         scenario=world.scenario_name,
                         incidents=tuple(i.as_dict() for i in world.incidents()), first_trajectory_s=first,
                         frames=frames)


def plan_limit_use(traj: PlannedTrajectory, limits: PlanLimits) -> dict[str, float]:
    """How close ``traj`` as published (float32) comes to each plan check's limit (1 = at it)."""
    f = TrajectoryFields.from_trajectory(traj).as_published()
    return limit_use(Plan.of(f.x, f.y, f.speed, f.dt), limits)


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
        "invalid_outputs": sum(r.skipped.get("invalid_output", 0) for r in results),
        **{f"plan_limit_use.{k}": max(r.plan_limit_use.get(k, 0.0) for r in results)
           for k in PLAN_CHECKS},
    }


def load_policy(spec: str = "", threads: int = 1) -> Policy:
    """``"expert"`` (oracle) or a policy manifest path ('' = the node's default model), loaded as the
    node loads it with its default parameters (ONNX Runtime: bit-exact across machines' CPUs)."""
    if spec == "expert":
        return ExpertPolicy()
    return PipelinePolicy.from_config(PolicyConfig(manifest_path=spec or DEFAULT_MANIFEST,
                                                   backend="onnxruntime", intra_op_threads=threads))


def episode_record(r: EpisodeResult) -> dict[str, object]:
    """One episode as JSON-ready dict (no path)."""
    return {**{k: v for k, v in asdict(r).items() if k not in ("path", "metrics", "incidents", "frames")},
            "metrics": r.metrics.as_dict(), "incidents": list(r.incidents)}


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scenario-mix`` / ``--scenario`` (``config/scenarios.yaml``), shared by the evaluators."""
    parser.add_argument("--scenario-mix", default=CLASSIC,
                        help="scenario mix of config/scenarios.yaml: the scenario type of each seed "
                             "(classic = the original empty-road world; traffic = all traffic types)")
    parser.add_argument("--scenario", default="",
                        help="one scenario type for every seed, e.g. pedestrian_crossing (focused runs)")


def scenario_world(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   base: WorldConfig | None = None) -> WorldConfig:
    """``base`` (default ``WorldConfig()``) with the scenario mix of ``args``; a bad name is a usage error."""
    try:
        mix = load_mix(args.scenario_mix, args.scenario)
    except ScenarioError as e:
        parser.error(str(e))
    return replace(base or WorldConfig(), scenarios=mix)


def main(argv: list[str] | None = None, progress: Callable[[str], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Closed loop in the simulator without ROS (a few seeds)")
    parser.add_argument("--seeds", default="1000:1005", help="seed spec (minipamayo_ros/seeds.py)")
    parser.add_argument("--policy", default=DEFAULT_MANIFEST,
                        help="'expert' (oracle) or a policy manifest path (default: the shipped model)")
    parser.add_argument("--latency", type=float, default=0.1, help="image stamp -> trajectory [s]")
    parser.add_argument("--rate", type=float, default=10.0, help="policy rate [Hz]")
    parser.add_argument("--duration", type=float, default=ClosedLoopSettings.max_seconds,
                        help="sim seconds per episode at most [s]")
    parser.add_argument("--json", type=str, default="", help="write per-episode results here")
    add_scenario_arguments(parser)
    args = parser.parse_args(argv)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    seeds = parse_seeds(args.seeds)
    settings = ClosedLoopSettings(policy_rate_hz=args.rate, latency=args.latency, max_seconds=args.duration)
    world = scenario_world(parser, args)
    policy = load_policy(args.policy)
    results = []
    for i, seed in enumerate(seeds):
        r = run_episode(seed, policy, world_config=world, settings=settings)
        results.append(r)
        m = r.metrics
        say(f"[{i + 1}/{len(seeds)}] seed {seed} ({r.scenario}): "
            f"{'finished' if r.finished else 'NOT finished'}, "
            f"{m.distance_m:.0f} m, cte rms {m.cross_track_rms_m:.3f} m, departures {m.lane_departures}, "
            f"collisions {m.collisions}, stop violations {m.stop_line_violations}")
    summary = summarize_results(results)
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "episodes": [episode_record(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
