"""The follower state machine: latest trajectory + odometry history -> one command per tick.

``Follower.update(now)`` is the whole control law (pure numpy, no ROS), called by the node's
timer at ``rate_hz``:

1. status: NO_ODOMETRY (odometry older than ``odom_stop_after``), NO_TRAJECTORY (none accepted
   yet), STALE_TRAJECTORY_STOP (latest older than ``trajectory_timeout`` from its image stamp),
   else TRACKING;
2. the trajectory is motion-compensated into the current body frame and extended along its last
   segment; the lookahead point at ``clamp(lookahead_time * v)`` is interpolated on it;
3. curvature ``2y/L^2`` -> steering ``atan(wheelbase * kappa)`` clamped and rate-limited; the
   curvature actually commanded is that of the limited steering angle;
4. speed: the trajectory's speed profile at ``now + lookahead_time``, capped by ``max_speed`` and
   by ``max_lateral_accel`` on the commanded curvature, limited by ``max_accel``/``max_decel``;
   0 when every remaining planned speed is below ``planned_stop_speed`` (a planned stop, not a
   crawl: see ``regulation.is_planned_stop``).

Inputs pass the safety core first (``minipamayo_ros.safety``): a rejected odometry sample or
trajectory is never stored (``add_odometry`` / ``set_trajectory`` return the
:class:`~minipamayo_ros.safety.rejection.Rejection`), and the ROS clock going back by more than
1 s (sim restart, bag loop) resets everything. Every command passes
:func:`~minipamayo_ros.safety.command_guard.command_violation`; one that fails (or an exception in
the control law) becomes the FAULT_STOP command: the controlled stop from the last valid speed
with the steering held, the reason in :attr:`Follower.last_fault`.

Not tracking = controlled stop: speed ramps to 0 at ``stop_decel`` (from ``v`` the stop takes at
most ``v / stop_decel`` seconds). While the stop is due to a stale trajectory and odometry is
fine, steering keeps following the last trajectory's (motion-compensated) path, so the vehicle
stays on it while braking; without odometry the steering angle is held. Fresh data resumes
tracking on the next tick, accelerating from the measured speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from minipamayo_ros.control import regulation as reg
from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.motion_compensation import PlanGeometry, compensate, plan_geometry
from minipamayo_ros.control.pure_pursuit import lookahead_point
from minipamayo_ros.pose_history import OdometrySample, PoseHistory
from minipamayo_ros.safety.command_guard import command_violation
from minipamayo_ros.safety.odometry_input import OdometryFields, OdometryGate
from minipamayo_ros.safety.plan_source import check_source
from minipamayo_ros.safety.rejection import Rejection
from minipamayo_ros.safety.stamps import ClockJumpDetector, check_stamp
from minipamayo_ros.safety.trajectory_input import TrajectoryFields, check_trajectory
from minipamayo_ros.trajectory import PlannedTrajectory

#: Seconds of odometry kept for motion compensation (>= the largest trajectory_timeout); older
#: odometry stamps are rejected.
HISTORY_SECONDS = 3.0
STANDING_MPS = 0.1  # [m/s] measured speed below which the vehicle stands (planned_stop_wait)


class ControlStatus(IntEnum):
    """Mirror of the status constants of ``msg/ControlCommand.msg`` (a test checks they match)."""

    TRACKING = 0
    STALE_TRAJECTORY_STOP = 1
    NO_ODOMETRY = 2
    NO_TRAJECTORY = 3
    SHUTDOWN = 4
    FAULT_STOP = 5


@dataclass(frozen=True)
class FollowerCommand:
    """One control output (fields as in ``msg/ControlCommand.msg``; SI units, REP-103)."""

    stamp: float                         # [s] time the command was computed
    status: ControlStatus
    steering_angle: float = 0.0          # [rad] after limits
    curvature: float = 0.0               # [1/m] of the limited steering angle
    speed: float = 0.0                   # [m/s] >= 0
    acceleration: float = 0.0            # [m/s^2] commanded speed change / dt
    yaw_rate: float = 0.0                # [rad/s] speed * curvature
    trajectory_stamp: float = 0.0        # [s] stamp of the trajectory followed (0 if none)
    trajectory_sequence: int = 0
    lookahead_x: float = 0.0             # [m] lookahead point in base_link at ``stamp``
    lookahead_y: float = 0.0             # [m]
    lookahead_distance: float = 0.0      # [m]

    @property
    def stopping(self) -> bool:
        return self.status != ControlStatus.TRACKING


class Follower:
    """Holds the latest valid trajectory and the odometry history; computes commands."""

    def __init__(self, config: FollowerConfig | None = None, producer: str | None = None) -> None:
        """``producer``: the fully qualified name of the node whose plans are followed (the node
        resolves ``trajectory_producer`` in its namespace); None accepts any producer, for offline
        callers that feed one source by construction (closed loop, replay)."""
        self.config = config or FollowerConfig()
        self.producer = producer
        self.history = PoseHistory(max_age=HISTORY_SECONDS, max_samples=4000)
        self.clock = ClockJumpDetector()
        self.odometry_gate = OdometryGate()
        self.faults = 0                 # commands replaced by the FAULT_STOP command
        self.last_fault = ""            # why, for the log and /diagnostics
        self.set_config(self.config)
        self.reset()

    def reset(self) -> None:
        """Forget trajectory, odometry and the limiter states (e.g. after a clock reset)."""
        self.history.clear()
        self.odometry_gate.reset()
        self.trajectory: PlannedTrajectory | None = None
        self._plan: tuple[PlannedTrajectory, PlanGeometry, list[float]] | None = None  # per-trajectory cache
        self.planned_stop_since: float | None = None  # [s] standing at a planned stop since
        self._last_time: float | None = None
        self._steer = 0.0
        self._speed = 0.0
        self._status = ControlStatus.NO_TRAJECTORY

    def set_config(self, config: FollowerConfig) -> None:
        """Apply new (already validated) parameters from the next sample / tick on."""
        self.config = config
        self.odometry_gate.limits = config.odometry_limits(max_age=HISTORY_SECONDS)
        self.trajectory_limits = config.trajectory_limits(config.base_frame)

    def observe_clock(self, now: float) -> bool:
        """Feed the ROS clock; True (and everything reset) if it jumped back (sim restart, bag loop)."""
        if self.clock.update(now):
            self.reset()
            return True
        return False

    # ----------------------------------------------------------------- inputs
    def add_odometry(self, odom: OdometrySample | OdometryFields,
                     now: float | None = None) -> Rejection | None:
        """Validate and store one odometry sample; returns why it was dropped, or None if stored.

        ``now`` is the ROS clock [s]; offline callers whose clock is the odometry stamp omit it.
        """
        fields = odom if isinstance(odom, OdometryFields) else OdometryFields.from_sample(odom)
        if now is None:
            now = fields.stamp
        else:
            self.observe_clock(now)
        result = self.odometry_gate.check(fields, now, self.history.latest)
        if isinstance(result, Rejection):
            return result
        self.history.add(result)
        return None

    def set_trajectory(self, traj: PlannedTrajectory | TrajectoryFields, now: float) -> Rejection | None:
        """Take ``traj`` as the one to follow; returns why it was rejected, or None if accepted.

        Rejected: content (``safety.trajectory_input``: frame, shapes, NaN/inf, impossible speeds or
        steps, then ``safety.plan_checks``: speeds vs spacing, direction, curvature, accelerations,
        jerk), stamp more than ``max_stamp_future`` ahead or ``trajectory_timeout`` behind the ROS
        clock, then the source (``safety.plan_source``: another producer, another live instance,
        older than the trajectory held, the same stamp with other content). A rejected plan changes
        nothing: the last good one is tracked until it goes stale.
        """
        self.observe_clock(now)
        fields = traj if isinstance(traj, TrajectoryFields) else TrajectoryFields.from_trajectory(traj)
        cfg = self.config
        bad = check_trajectory(fields, self.trajectory_limits) or check_stamp(
            fields.stamp, now, cfg.max_stamp_future, cfg.trajectory_timeout) or check_source(
            fields.producer, fields.producer_instance, fields.sequence, fields.stamp,
            (fields.x, fields.y, fields.speed, fields.dt), self.trajectory, self.producer, now,
            cfg.trajectory_timeout)
        if bad is not None:
            return bad
        self.trajectory = fields.to_trajectory()
        return None

    # ----------------------------------------------------------------- control
    def shutdown_command(self, now: float) -> FollowerCommand:
        """The last command of a follower that stops running: speed 0, status SHUTDOWN.

        It cannot ramp any more, so it asks for 0 m/s now and says how hard to brake
        (``acceleration = -stop_decel`` while the last command was moving); steering is held,
        yaw rate 0. The vehicle's speed controller brakes within its own limits.
        """
        cfg = self.config
        steer = self._steer if math.isfinite(self._steer) else 0.0
        moving = math.isfinite(self._speed) and self._speed > 0.0
        traj = self.trajectory
        return FollowerCommand(
            stamp=now,
            status=ControlStatus.SHUTDOWN,
            steering_angle=steer,
            curvature=reg.curvature_from_steering(steer, cfg.wheelbase),
            speed=0.0,
            acceleration=-cfg.stop_decel if moving else 0.0,
            yaw_rate=0.0,
            trajectory_stamp=traj.stamp if traj is not None else 0.0,
            trajectory_sequence=traj.sequence if traj is not None else 0,
        )

    def status_at(self, now: float) -> ControlStatus:
        """Why (or whether) the follower tracks at ``now`` (see module docstring, step 1)."""
        return self._status_and_reason(now)[0]

    def planned_stop_wait(self, now: float) -> float:
        """[s] the vehicle has stood at a planned stop (tracking a plan the follower holds at 0).

        Long waits are how a stop-line deadlock shows (the policy plans a stop or a creep for ever:
        docs/closed-loop-evaluation.md); the node reports them, the follower does not override them.
        """
        return 0.0 if self.planned_stop_since is None else max(0.0, now - self.planned_stop_since)

    def status_reason(self, now: float) -> str:
        """A sentence for the log saying why the status at ``now`` is what it is."""
        return self._status_and_reason(now)[1]

    def _status_and_reason(self, now: float) -> tuple[ControlStatus, str]:
        cfg = self.config
        latest = self.history.latest
        if latest is None:
            return ControlStatus.NO_ODOMETRY, "no odometry received"
        odom_age = now - latest.stamp
        if odom_age > cfg.odom_stop_after:
            return ControlStatus.NO_ODOMETRY, f"latest odometry {odom_age:.3f} s old (> odom_stop_after)"
        if odom_age < -cfg.max_stamp_future:  # stamps on another clock: never trust them as fresh
            return (ControlStatus.NO_ODOMETRY, f"odometry stamped {-odom_age:.3f} s ahead of the ROS "
                    "clock (use_sim_time mismatch?)")
        if self.trajectory is None:
            return ControlStatus.NO_TRAJECTORY, "no valid trajectory received yet"
        age = now - self.trajectory.stamp
        if age > cfg.trajectory_timeout:
            return (ControlStatus.STALE_TRAJECTORY_STOP,
                    f"latest trajectory {age:.3f} s old (> trajectory_timeout)")
        return ControlStatus.TRACKING, f"trajectory {self.trajectory.sequence}, {age:.3f} s old"

    def update(self, now: float) -> FollowerCommand:
        """The command for time ``now`` [s] (ROS clock); advances the rate limiters.

        Never raises and never returns a command outside the limits (see module docstring).
        """
        self.observe_clock(now)
        cfg = self.config
        first_tick = self._last_time is None
        dt = cfg.period if first_tick else min(max(now - self._last_time, 0.0), 0.1)  # type: ignore[operator]
        self._last_time = now
        previous_speed, previous_steer = self._speed, self._steer
        try:
            with np.errstate(all="ignore"):  # a non-finite result is caught by the guard, not stderr
                cmd = self._control(now, dt, first_tick)
            # on the first tick the stop ramps down from the measured speed, not from a command
            violation = command_violation(cmd, cfg, previous_speed, cmd.stopping and not first_tick)
        except Exception as exc:  # the control law must never take the node down
            violation = f"{type(exc).__name__} in the control law: {exc}"
        if violation is None:
            return cmd
        return self._fault_stop(now, dt, previous_speed, previous_steer, violation)

    def _fault_stop(self, now: float, dt: float, previous_speed: float, previous_steer: float,
                    why: str) -> FollowerCommand:
        """The controlled stop from the last valid state, steering held (the guard's output)."""
        cfg = self.config
        self.faults += 1
        self.last_fault = why
        prev = min(previous_speed, cfg.max_speed) if math.isfinite(previous_speed) else 0.0
        prev = max(prev, 0.0)
        steer = reg.clamp(previous_steer, cfg.max_steer) if math.isfinite(previous_steer) else 0.0
        speed = reg.stop_speed(prev, cfg.stop_decel, dt)
        curvature = reg.curvature_from_steering(steer, cfg.wheelbase)
        self._steer, self._speed, self._status = steer, speed, ControlStatus.FAULT_STOP
        traj = self.trajectory
        return FollowerCommand(
            stamp=now, status=ControlStatus.FAULT_STOP, steering_angle=steer, curvature=curvature,
            speed=speed, acceleration=(speed - prev) / dt if dt > 0.0 else 0.0, yaw_rate=speed * curvature,
            trajectory_stamp=traj.stamp if traj is not None else 0.0,
            trajectory_sequence=traj.sequence if traj is not None else 0)

    def _plan_of(self, traj: PlannedTrajectory) -> tuple[PlanGeometry, list[float]]:
        """Per-trajectory values the ticks reuse: the polyline geometry and the suffix maxima of the
        planned speeds (``[i]`` = max of ``speeds[i:]``), computed once per trajectory."""
        if self._plan is None or self._plan[0] is not traj:
            speeds = [float(v) for v in traj.speeds]
            suffix = speeds[:]
            for i in range(len(suffix) - 2, -1, -1):
                suffix[i] = max(suffix[i], suffix[i + 1])
            self._plan = (traj, plan_geometry(traj), suffix)
        return self._plan[1], self._plan[2]

    def _remaining_max(self, traj: PlannedTrajectory, t: float) -> list[float]:
        """The speed profile at ``t`` s after the stamp and the largest planned speed after it
        (what ``is_planned_stop`` needs of the remaining plan), without building the remaining list."""
        suffix = self._plan_of(traj)[1]
        k = 0
        while k < len(suffix) and (k + 1) * traj.dt <= t:  # first waypoint later than t
            k += 1
        now_speed = _speed_at(traj, t)
        return [now_speed, suffix[k]] if k < len(suffix) else [now_speed]

    def _control(self, now: float, dt: float, first_tick: bool) -> FollowerCommand:
        """The control law proper (module docstring, steps 1-4)."""
        cfg = self.config

        status = self.status_at(now)
        current = self.history.interpolate(now, cfg.odom_stop_after)
        measured_speed = current.speed if current is not None else self._speed
        if first_tick:  # e.g. a restarted node on a moving vehicle: ramp down from the real speed
            self._speed = min(max(0.0, measured_speed), cfg.max_speed)
        traj = self.trajectory
        path = None
        if traj is not None and status in (ControlStatus.TRACKING, ControlStatus.STALE_TRAJECTORY_STOP):
            path = compensate(traj, self.history, now, cfg.odom_stop_after, cfg.max_lookahead + 1.0, current,
                              geometry=self._plan_of(traj)[0])
            if path is None and status == ControlStatus.TRACKING:
                status = ControlStatus.NO_ODOMETRY  # odometry does not cover the trajectory stamp

        if path is not None:
            L = reg.lookahead_distance(measured_speed, cfg.lookahead_time, cfg.min_lookahead,
                                       cfg.max_lookahead)
            goal = lookahead_point(path.points, L)
            la_x, la_y, la_d = goal.x, goal.y, goal.distance
            target_steer = reg.steering_from_curvature(reg.pursuit_curvature(la_x, la_y), cfg.wheelbase)
        else:  # hold the steering angle: no trustworthy geometry
            la_x = la_y = la_d = 0.0
            target_steer = self._steer
        steer = reg.rate_limit(reg.clamp(target_steer, cfg.max_steer), self._steer, cfg.max_steer_rate, dt)
        steer = reg.clamp(steer, cfg.max_steer)
        curvature = reg.curvature_from_steering(steer, cfg.wheelbase)

        if status == ControlStatus.TRACKING:
            assert traj is not None
            if self._status != ControlStatus.TRACKING:  # resume from where the vehicle is
                self._speed = min(max(0.0, measured_speed), cfg.max_speed)
            target = _speed_at(traj, now - traj.stamp + cfg.lookahead_time)
            if reg.is_planned_stop(self._remaining_max(traj, now - traj.stamp), cfg.planned_stop_speed):
                target = 0.0
                if measured_speed >= STANDING_MPS:
                    self.planned_stop_since = None  # still braking (or rolling)
                elif self.planned_stop_since is None:
                    self.planned_stop_since = now
            else:
                self.planned_stop_since = None
            target = min(target, cfg.max_speed, reg.curvature_speed_limit(curvature, cfg.max_lateral_accel))
            speed = reg.accel_limited_speed(target, self._speed, cfg.max_accel, cfg.max_decel, dt)
        else:
            self._speed = min(self._speed, cfg.max_speed)  # max_speed may have been lowered
            speed = reg.stop_speed(self._speed, cfg.stop_decel, dt)
        accel = (speed - self._speed) / dt if dt > 0.0 else 0.0

        if status != ControlStatus.TRACKING:
            self.planned_stop_since = None
        self._steer, self._speed, self._status = steer, speed, status
        return FollowerCommand(
            stamp=now,
            status=status,
            steering_angle=steer,
            curvature=curvature,
            speed=speed,
            acceleration=accel,
            yaw_rate=speed * curvature,
            trajectory_stamp=traj.stamp if traj is not None else 0.0,
            trajectory_sequence=traj.sequence if traj is not None else 0,
            lookahead_x=la_x,
            lookahead_y=la_y,
            lookahead_distance=la_d,
        )


def _speed_at(traj: PlannedTrajectory, t: float) -> float:
    """[m/s] the speed profile at ``t`` seconds after the stamp (held at both ends)."""
    speeds = traj.speeds
    i = t / traj.dt - 1.0  # speeds[i] belongs to t = (i + 1) dt
    if i <= 0.0:
        return float(speeds[0])
    if i >= len(speeds) - 1:
        return float(speeds[-1])
    k = int(math.floor(i))
    w = i - k
    return float(speeds[k] * (1.0 - w) + speeds[k + 1] * w)
