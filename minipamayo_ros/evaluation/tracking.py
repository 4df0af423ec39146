"""The follower's tracking evaluation: a centreline "policy" on a test track, through the one closed loop.

Used by the follower's closed-loop tests and ``bench/bench_follower.py``. :class:`CenterlinePolicy`
captures the vehicle pose at each frame (ground truth), plans 20 waypoints (0.1 s apart) along
the road centreline at the set speed, in the body frame at that stamp; the closed loop
(``evaluation.closed_loop.run_episode``) delivers it ``latency`` s later to the real follower, with
exact 50 Hz odometry, on a road from ``sim.road`` (``reference_road``, ``road_from_curvature``).
Cross-track error = signed distance of the rear axle from the centreline (left positive).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, Observation, run_episode
from minipamayo_ros.policy.pipeline import Skip
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.road import Road, RoadConfig
from minipamayo_ros.sim.vehicle import VehicleParams
from minipamayo_ros.sim.world import WorldConfig
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT, PlannedTrajectory

#: [m/s^2] the centreline plans slow down for curves, braking at most PLAN_DECEL (speeding up at
#: most PLAN_ACCEL), to at most this lateral acceleration (10 m/s through a 10 m radius is no
#: possible plan: the follower's plan checks reject it)
PLAN_LATERAL_ACCEL = 5.0
PLAN_DECEL = 3.0
PLAN_ACCEL = 2.0


class CenterlinePolicy:
    """Plans along the centreline at ``speed`` [m/s] (slower where the curvature asks for more than
    :data:`PLAN_LATERAL_ACCEL`); ``plan_noise`` [m] is the std of a sideways shift of each whole
    plan (a policy's error), drawn from a ``seed``-ed generator."""

    uses_camera = False

    def __init__(self, speed: float, plan_noise: float = 0.0, seed: int = 0) -> None:
        self.speed, self.plan_noise, self.seed = speed, plan_noise, seed
        self.start()

    def start(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._sequence = 0

    def add_odometry(self, sample: OdometrySample) -> None:
        pass

    def __call__(self, obs: Observation) -> PlannedTrajectory | Skip:
        world = obs.world
        stations: NDArray[np.float64] = np.asarray(
            world.proj.s + self.speed * WAYPOINT_DT * np.arange(1, NUM_WAYPOINTS + 1), dtype=np.float64)
        for _ in range(3):  # speeds for the curvature where the waypoints are, and back
            kappa = np.abs(world.road.curvature_at(stations))
            speeds = np.minimum(self.speed, np.sqrt(PLAN_LATERAL_ACCEL / np.maximum(kappa, 1e-9)))
            for i in range(NUM_WAYPOINTS - 2, -1, -1):  # brake in time for the slowest point ahead
                speeds[i] = min(speeds[i], speeds[i + 1] + PLAN_DECEL * WAYPOINT_DT)
            for i in range(1, NUM_WAYPOINTS):  # and speed up gently after it
                speeds[i] = min(speeds[i], speeds[i - 1] + PLAN_ACCEL * WAYPOINT_DT)
            stations = np.asarray(world.proj.s + np.cumsum(0.5 * (np.r_[speeds[0], speeds[:-1]] + speeds)
                                                           * WAYPOINT_DT), dtype=np.float64)
        points = world.road.points_at(stations)
        if self.plan_noise > 0.0:  # shift the whole plan sideways (road normal at each point)
            normal = world.road.heading_at(stations) + np.pi / 2
            shift = self._rng.normal(0.0, self.plan_noise)
            points = points + shift * np.stack((np.cos(normal), np.sin(normal)), 1)
        self._sequence += 1
        return PlannedTrajectory(stamp=obs.stamp, points=world.state.pose.inverse().transform_points(points),
                                 speeds=speeds, sequence=self._sequence)


@dataclass(frozen=True)
class TrackingResult:
    cross_track_rms: float               # [m]
    cross_track_max: float               # [m] largest |error|
    mean_speed: float                    # [m/s] scored part
    min_speed: float                     # [m/s] scored part
    duration: float                      # [s] scored part
    tracking_fraction: float             # share of follower ticks with status TRACKING (scored part)
    times: NDArray[np.float64]           # [s] per follower tick (scored part)
    stations: NDArray[np.float64]        # [m] arc length along the road, per follower tick
    cross_track: NDArray[np.float64]     # [m] signed, per follower tick (scored part)


def track(road: Road, speed: float = 5.0, settings: ClosedLoopSettings | None = None, plan_noise: float = 0.0,
          seed: int = 0, warmup: float = 1.0, vehicle: VehicleParams | None = None,
          physics_dt: float = 0.005, end_margin: float = 35.0) -> TrackingResult:
    """Drive ``road`` from its start at ``speed`` until ``end_margin`` m before its end; return the
    tracking error after ``warmup`` s (start-up: no trajectory yet). ``reference_road`` has a 30 m
    run-out, so the default margin ends scoring 5 m before the track proper."""
    st = settings or ClosedLoopSettings(latency=0.15)
    world = WorldConfig(road=RoadConfig(lane_width=road.lane_width), vehicle=vehicle or VehicleParams(),
                        physics_dt=physics_dt, start_s=0.0, start_speed=speed, end_margin=end_margin)
    st = replace(st, max_seconds=min(st.max_seconds, 4.0 * road.length / max(speed, 0.5) + 10.0))
    result = run_episode(seed, CenterlinePolicy(speed, plan_noise, seed), world, st, record_path=True,
                         road=road)
    path = result.path if result.path is not None else np.zeros((0, 7))
    scored = path[path[:, 0] >= warmup]
    t, v, e, s, tracking = scored[:, 0], scored[:, 3], scored[:, 4], scored[:, 5], scored[:, 6]
    return TrackingResult(
        cross_track_rms=float(np.sqrt(np.mean(e**2))) if e.size else float("nan"),
        cross_track_max=float(np.max(np.abs(e))) if e.size else float("nan"),
        mean_speed=float(v.mean()) if v.size else float("nan"),
        min_speed=float(v.min()) if v.size else float("nan"),
        duration=float(t[-1] - t[0]) if t.size else 0.0,
        tracking_fraction=float(np.mean(tracking)) if tracking.size else 0.0,
        times=t, stations=s, cross_track=e,
    )
