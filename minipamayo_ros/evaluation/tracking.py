"""Closed-loop tracking evaluation: a reference road, the kinematic bicycle, delayed trajectories.

Used by the follower's closed-loop test and by ``bench/bench_follower.py``. A stand-in "policy"
captures the vehicle pose every ``1 / trajectory_rate_hz`` s, plans 20 waypoints (0.1 s apart)
along the road centreline at the set speed, in the body frame at that capture stamp, and delivers
the trajectory ``latency`` seconds later. Odometry (exact rear-axle pose and twist) arrives at
``odom_rate_hz``; the follower runs at its ``rate_hz``; the vehicle integrates at ``sim_dt``.
Cross-track error = signed distance of the rear axle from the centreline (left positive).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus, Follower
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.vehicle import KinematicBicycle, VehicleParams, VehicleState
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT, PlannedTrajectory


class Road:
    """A centreline from a curvature profile ``kappa(s)`` [1/m], starting at the origin along +x.

    Beyond its end the road continues straight (so plans near the end stay defined).
    """

    def __init__(self, curvature: Callable[[NDArray[np.float64]], NDArray[np.float64]], length: float,
                 ds: float = 0.05) -> None:
        self.s = np.arange(0.0, length + ds, ds)
        self.kappa = np.asarray(curvature(self.s), dtype=np.float64)
        yaw = np.concatenate(([0.0], np.cumsum(0.5 * (self.kappa[1:] + self.kappa[:-1]) * ds)))
        mid = yaw[:-1] + 0.5 * np.diff(yaw)
        self.yaw = yaw
        self.xy = np.zeros((len(self.s), 2))
        self.xy[1:, 0] = np.cumsum(np.cos(mid) * ds)
        self.xy[1:, 1] = np.cumsum(np.sin(mid) * ds)
        self.length = float(self.s[-1])

    def pose_at(self, s: float) -> Pose2D:
        """Centreline pose at arc length ``s`` [m]."""
        pts = self.points_at(np.array([s]))
        return Pose2D(float(pts[0, 0]), float(pts[0, 1]), float(np.interp(s, self.s, self.yaw)))

    def points_at(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(N, 2)`` centreline points at arc lengths ``s`` (straight extension past the end)."""
        s = np.asarray(s, dtype=np.float64)
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        over = np.maximum(s - self.length, 0.0)
        return np.stack((x + over * np.cos(self.yaw[-1]), y + over * np.sin(self.yaw[-1])), axis=1)

    def project(self, x: float, y: float, hint: int = 0, window: int = 600) -> tuple[float, float, int]:
        """``(s, signed lateral offset [m] (left +), vertex index)`` of the point nearest ``(x, y)``."""
        lo, hi = max(0, hint - window), min(len(self.s), hint + window)
        d = self.xy[lo:hi] - (x, y)
        i = lo + int(np.argmin(np.einsum("ij,ij->i", d, d)))
        yaw = self.yaw[i]
        dx, dy = x - self.xy[i, 0], y - self.xy[i, 1]
        along = np.cos(yaw) * dx + np.sin(yaw) * dy
        lateral = -np.sin(yaw) * dx + np.cos(yaw) * dy
        return float(self.s[i] + along), float(lateral), i


def reference_road(max_curvature: float = 0.1) -> Road:
    """Straight, left curve, S-bend to a right curve, straight: 160 m, |kappa| <= ``max_curvature``.

    Curvature changes along cosine ramps (clothoid-like, 12-20 m), as on a real road.
    """
    k = max_curvature
    # (start s, end s, kappa at start, kappa at end); constant where equal
    pieces = [(0, 15, 0, 0), (15, 30, 0, k), (30, 50, k, k), (50, 70, k, -k), (70, 90, -k, -k),
              (90, 102, -k, 0), (102, 115, 0, 0), (115, 130, 0, 0.5 * k), (130, 145, 0.5 * k, 0),
              (145, 160, 0, 0)]

    def kappa(s: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.zeros_like(s)
        for a, b, ka, kb in pieces:
            m = (s >= a) & (s < b)
            w = 0.5 - 0.5 * np.cos(np.pi * (s[m] - a) / (b - a))
            out[m] = ka + (kb - ka) * w
        return out

    return Road(kappa, 160.0)


@dataclass(frozen=True)
class ClosedLoopSettings:
    speed: float = 5.0                   # [m/s] planned (set) speed
    latency: float = 0.15                # [s] image stamp -> trajectory delivered to the follower
    trajectory_rate_hz: float = 10.0
    odom_rate_hz: float = 50.0
    sim_dt: float = 0.005                # [s]
    warmup: float = 1.0                  # [s] not scored (start-up: no trajectory yet)
    plan_noise: float = 0.0              # [m] std of a per-trajectory lateral offset (policy error)
    seed: int = 0                        # for plan_noise
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    follower: FollowerConfig = field(default_factory=FollowerConfig)


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


def run_closed_loop(road: Road, settings: ClosedLoopSettings | None = None) -> TrackingResult:
    """Drive ``road`` from its start to 5 m before its end; return the scored tracking error."""
    st = settings or ClosedLoopSettings()
    follower = Follower(st.follower)
    car = KinematicBicycle(st.vehicle)
    state = VehicleState(pose=road.pose_at(0.0), speed=st.speed)
    every = {name: max(1, round(1.0 / (hz * st.sim_dt))) for name, hz in
             (("ctrl", st.follower.rate_hz), ("odom", st.odom_rate_hz), ("plan", st.trajectory_rate_hz))}
    delay_steps = round(st.latency / st.sim_dt)
    pending: deque[tuple[int, PlannedTrajectory]] = deque()
    offsets = st.speed * WAYPOINT_DT * np.arange(1, NUM_WAYPOINTS + 1)
    steer_cmd = speed_cmd = 0.0
    hint, seq, step = 0, 0, 0
    rng = np.random.default_rng(st.seed)
    times, stations, errors, speeds, tracking = [], [], [], [], []
    while True:
        t = step * st.sim_dt
        s, lateral, hint = road.project(state.pose.x, state.pose.y, hint)
        if s > road.length - 5.0 or t > 4.0 * road.length / max(st.speed, 0.5) + 10.0:
            break
        if step % every["odom"] == 0:
            follower.add_odometry(OdometrySample(t, state.pose, state.speed, car.yaw_rate(state)))
        if step % every["plan"] == 0:
            world = road.points_at(s + offsets)
            if st.plan_noise > 0.0:  # shift the whole plan sideways (road normal at each point)
                normal_yaw = np.interp(s + offsets, road.s, road.yaw) + np.pi / 2
                shift = rng.normal(0.0, st.plan_noise)
                world = world + shift * np.stack((np.cos(normal_yaw), np.sin(normal_yaw)), 1)
            pts = state.pose.inverse().transform_points(world)
            seq += 1
            pending.append((step + delay_steps, PlannedTrajectory(
                stamp=t, points=pts, speeds=np.full(NUM_WAYPOINTS, st.speed), sequence=seq)))
        while pending and pending[0][0] <= step:
            follower.set_trajectory(pending.popleft()[1], t)
        if step % every["ctrl"] == 0:
            cmd = follower.update(t)
            steer_cmd, speed_cmd = cmd.steering_angle, cmd.speed
            if t >= st.warmup:
                times.append(t)
                stations.append(s)
                errors.append(lateral)
                speeds.append(state.speed)
                tracking.append(cmd.status == ControlStatus.TRACKING)
        state = car.step(state, steer_cmd, speed_cmd, st.sim_dt)
        step += 1
    e = np.asarray(errors)
    v = np.asarray(speeds)
    return TrackingResult(
        cross_track_rms=float(np.sqrt(np.mean(e**2))) if e.size else float("nan"),
        cross_track_max=float(np.max(np.abs(e))) if e.size else float("nan"),
        mean_speed=float(v.mean()) if v.size else float("nan"),
        min_speed=float(v.min()) if v.size else float("nan"),
        duration=float(times[-1] - times[0]) if times else 0.0,
        tracking_fraction=float(np.mean(tracking)) if tracking else 0.0,
        times=np.asarray(times),
        stations=np.asarray(stations),
        cross_track=e,
    )
