"""The safety core without ROS: odometry/trajectory validation, stamps and clock jumps, the
watchdog, the follower's output guard, and the issue-13 defects at the core level."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus, Follower, FollowerCommand
from minipamayo_ros.geometry import Pose2D, quaternion_from_yaw
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.command_guard import command_violation
from minipamayo_ros.safety.context_input import check_context
from minipamayo_ros.safety.image_input import check_compressed_image, check_raw_image
from minipamayo_ros.safety.input_monitor import ERROR, OK, WARN, InputMonitor, TopicState
from minipamayo_ros.safety.odometry_input import OdometryFields, OdometryGate, OdometryLimits
from minipamayo_ros.safety.rejection import Rejection
from minipamayo_ros.safety.stamps import ClockJumpDetector, check_stamp
from minipamayo_ros.safety.trajectory_input import (
    TrajectoryFields,
    TrajectoryLimits,
    check_trajectory,
    trajectory_error,
)
from minipamayo_ros.trajectory import PlannedTrajectory

CFG = FollowerConfig()
NAN, INF = float("nan"), float("inf")


def _odom(stamp: float, x: float = 0.0, speed: float = 5.0, yaw: float = 0.0, yaw_rate: float = 0.0,
          **override: float) -> OdometryFields:
    qx, qy, qz, qw = quaternion_from_yaw(yaw)
    f = OdometryFields(stamp, x, 0.0, qx, qy, qz, qw, speed, yaw_rate)
    return replace(f, **override)


def _plan(stamp: float, speed: float = 5.0, frame: str = "base_link") -> TrajectoryFields:
    t = 0.1 * np.arange(1, 21)
    return TrajectoryFields(stamp, frame, speed * t, 0.01 * t, np.full(20, speed), 0.1)


def _drive(f: Follower, t0: float, t1: float, speed: float = 5.0, **override: float) -> list[FollowerCommand]:
    """Odometry every 20 ms, a fresh trajectory every 100 ms (stamped 50 ms back), a tick each 20 ms."""
    cmds = []
    for k, t in enumerate(np.arange(t0, t1, 0.02)):
        t = float(t)
        f.add_odometry(_odom(t, speed * t, speed, **override), now=t)
        if k % 5 == 0:
            f.set_trajectory(_plan(t - 0.05, speed), now=t)
        cmds.append(f.update(t))
    return cmds


def _finite(cmd: FollowerCommand) -> bool:
    return all(math.isfinite(v) for v in (cmd.steering_angle, cmd.curvature, cmd.speed, cmd.acceleration,
                                          cmd.yaw_rate, cmd.lookahead_x, cmd.lookahead_y,
                                          cmd.lookahead_distance))


# --- odometry ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "kind", "field"), [
    ({"speed": NAN}, "non_finite", "twist.twist.linear.x"),
    ({"yaw_rate": INF}, "non_finite", "twist.twist.angular.z"),
    ({"x": -INF}, "non_finite", "pose.pose.position.x"),
    ({"qw": NAN}, "non_finite", "pose.pose.orientation.w"),
    ({"stamp": NAN}, "non_finite", "header.stamp"),
    ({"x": 1e12}, "out_of_range", "pose.pose.position.x"),
    ({"qx": 0.0, "qy": 0.0, "qz": 0.0, "qw": 0.0}, "bad_quaternion", "pose.pose.orientation"),
    ({"qw": 2.0}, "bad_quaternion", "pose.pose.orientation"),
    ({"speed": 1e6}, "out_of_range", "twist.twist.linear.x"),
    ({"speed": -50.0}, "out_of_range", "twist.twist.linear.x"),
    ({"yaw_rate": 10.0}, "out_of_range", "twist.twist.angular.z"),
    ({"stamp": 10.0 + 20.0}, "future_stamp", "header.stamp"),
    ({"stamp": 10.0 - 3.5}, "old_stamp", "header.stamp"),
])
def test_bad_odometry_is_rejected_naming_field_and_value(override, kind, field) -> None:
    gate = OdometryGate()
    rej = gate.check(replace(_odom(10.0), **override), now=10.0, last=None)
    assert isinstance(rej, Rejection) and rej.kind == kind and rej.field == field
    assert str(rej).startswith(f"{field} = ")


def test_all_zero_quaternion_is_not_yaw_zero_but_a_slightly_off_norm_is_normalised() -> None:
    """Issue 13 defect 6 (failed before: an all-zero quaternion was accepted as yaw 0)."""
    gate = OdometryGate()
    rej = gate.check(_odom(1.0, qw=0.0), 1.0, None)
    assert isinstance(rej, Rejection) and "norm 0" in rej.detail
    qx, qy, qz, qw = (1.02 * c for c in quaternion_from_yaw(0.7))
    ok = gate.check(_odom(1.0, qx=qx, qy=qy, qz=qz, qw=qw), 1.0, None)
    assert isinstance(ok, OdometrySample) and ok.pose.yaw == pytest.approx(0.7)


def test_speed_outlier_dropped_but_a_confirmed_step_accepted() -> None:
    gate = OdometryGate(OdometryLimits(max_accel=20.0))
    last = OdometrySample(1.0, Pose2D(), 5.0, 0.0)
    spike = gate.check(_odom(1.02, speed=30.0), 1.02, last)
    assert isinstance(spike, Rejection) and spike.kind == "implausible"
    assert isinstance(gate.check(_odom(1.04, speed=5.1), 1.04, last), OdometrySample)  # spike was alone
    # a real step (odometry source reset to standstill): the second sample confirms it
    assert isinstance(gate.check(_odom(1.06, speed=0.0), 1.06, last), Rejection)
    assert isinstance(gate.check(_odom(1.08, speed=0.0), 1.08, last), OdometrySample)


def test_stamp_rules_and_clock_jump_detector() -> None:
    assert check_stamp(10.05, 10.0, 0.1, 1.0) is None
    assert check_stamp(10.2, 10.0, 0.1, 1.0).kind == "future_stamp"  # type: ignore[union-attr]
    assert check_stamp(8.0, 10.0, 0.1, 1.0).kind == "old_stamp"  # type: ignore[union-attr]
    clock = ClockJumpDetector(threshold=1.0)
    assert not any(clock.update(t) for t in (5.0, 5.5, 5.2, 6.0))  # jitter is not a jump
    assert clock.update(0.5) and clock.jumps == 1 and not clock.update(0.6)
    assert not clock.update(NAN)


# --- trajectories ----------------------------------------------------------------------------------
def test_trajectory_x_y_lengths_differ_gives_the_right_reason() -> None:
    """Issue 13 defect 6 (failed before: "needs at least 2 waypoints, got 0")."""
    f = replace(_plan(1.0), y=np.zeros(19))
    rej = check_trajectory(f)
    assert rej is not None and rej.kind == "bad_shape" and "20/19/20" in str(rej)


def test_trajectory_limits() -> None:
    assert check_trajectory(_plan(1.0)) is None
    assert check_trajectory(_plan(1.0, frame="map")).kind == "wrong_frame"  # type: ignore[union-attr]
    assert check_trajectory(_plan(1.0, frame="")).kind == "wrong_frame"  # type: ignore[union-attr]
    assert check_trajectory(_plan(1.0, speed=1e6)).kind == "out_of_range"  # type: ignore[union-attr]
    assert check_trajectory(_plan(1.0), TrajectoryLimits(max_speed=4.0)) is not None
    far = replace(_plan(1.0), x=np.linspace(1.0, 3e5, 20))
    assert check_trajectory(far).kind == "implausible"  # type: ignore[union-attr]
    assert check_trajectory(replace(_plan(1.0), dt=0.0)).kind == "out_of_range"  # type: ignore[union-attr]
    huge = replace(_plan(1.0), x=np.full(20, 1e308), y=np.full(20, -1e308))
    assert check_trajectory(huge) is not None


# --- watchdog --------------------------------------------------------------------------------------
def test_watchdog_states_and_rate_limited_log() -> None:
    m = InputMonitor("/odom", stale_after=0.2, min_rate_hz=10.0, rate_window=1.0, log_interval=2.0)
    assert m.state(0.0) == TopicState.NEVER_RECEIVED and m.report(0.0).level == WARN
    for t in np.arange(0.0, 2.0, 0.02):
        m.accepted(float(t))
    assert m.state(2.0) == TopicState.OK and m.report(2.0).level == OK
    assert m.state(2.5) == TopicState.STALE and m.report(2.5).level == ERROR
    for t in np.arange(2.5, 5.0, 0.15):  # ~6.7 Hz < 10 Hz, never stale for 0.2 s
        m.accepted(float(t))
    assert m.state(4.96) == TopicState.RATE_TOO_LOW
    rej = Rejection("non_finite", "twist.twist.linear.x", NAN, "not finite")
    first = m.rejected(rej, 5.0, wall_now=100.0)
    assert first is not None and "twist.twist.linear.x = nan" in first
    assert m.rejected(rej, 5.01, wall_now=100.5) is None  # same kind within the interval: counted only
    other = Rejection("future_stamp", "header.stamp", 30.0, "ahead")
    assert m.rejected(other, 5.02, wall_now=100.6) is not None  # another kind is logged at once
    again = m.rejected(rej, 5.03, wall_now=102.1)
    assert again is not None and "1 more non_finite" in again
    v = m.report(5.04).values
    assert v["rejected"] == "4" and v["rejected.non_finite"] == "3" and v["rejected.future_stamp"] == "1"
    m.clock_reset()
    assert m.state(0.1) == TopicState.STALE


# --- the follower: defects 1, 3, 5 and the output guard ----------------------------------------------
def test_nan_or_inf_twist_never_reaches_the_command() -> None:
    """Issue 13 defect 1 (failed before: NaN steering/curvature/yaw rate while TRACKING at 5 m/s)."""
    f = Follower()
    _drive(f, 0.0, 1.0)
    cmds = []
    for k, t in enumerate(np.arange(1.0, 2.0, 0.02)):  # one bad sample in 5
        t = float(t)
        bad = k % 5 == 0
        rej = f.add_odometry(_odom(t, 5.0 * t, NAN if bad else 5.0, yaw_rate=INF if bad else 0.0), now=t)
        assert (rej is not None) == bad
        if k % 5 == 1:
            f.set_trajectory(_plan(t - 0.05), now=t)
        cmds.append(f.update(t))
    assert all(_finite(c) for c in cmds)
    assert all(c.status == ControlStatus.TRACKING for c in cmds) and cmds[-1].speed > 4.0
    # NaN then an odometry dropout: the stop is finite too
    f.add_odometry(_odom(2.0, 10.0, NAN), now=2.0)
    stop = [f.update(float(t)) for t in np.arange(2.0, 4.0, 0.02)]
    assert all(_finite(c) for c in stop) and stop[-1].status == ControlStatus.NO_ODOMETRY
    assert stop[-1].speed == 0.0


@pytest.mark.parametrize("ahead", [20.0, 1000.0])
def test_one_future_stamped_odometry_does_not_take_the_follower_out_of_service(ahead: float) -> None:
    """Issue 13 defect 3 (failed before: NO_ODOMETRY for ``ahead`` s, forever for 1000 s)."""
    f = Follower()
    _drive(f, 0.0, 1.0)
    rej = f.add_odometry(_odom(1.0 + ahead, 5.0), now=1.0)
    assert rej is not None and rej.kind == "future_stamp"
    cmds = _drive(f, 1.0, 2.0)
    assert all(c.status == ControlStatus.TRACKING for c in cmds)


def test_real_clock_jump_back_resets_and_recovers() -> None:
    f = Follower()
    _drive(f, 100.0, 101.0)
    cmds = _drive(f, 0.0, 1.5)  # the node clock itself restarted (sim reset, bag loop)
    assert f.clock.jumps == 1 and cmds[-1].status == ControlStatus.TRACKING


def test_absurd_odometry_speed_gives_no_absurd_command() -> None:
    """Issue 13 defect 5 at the follower: 1e6 m/s odometry is rejected, commands stay bounded."""
    f = Follower()
    _drive(f, 0.0, 1.0)
    rej = f.add_odometry(_odom(1.0, 5.0, 1e6), now=1.0)
    assert rej is not None and "odom_max_speed" in str(rej)
    assert all(c.speed <= CFG.max_speed for c in _drive(f, 1.01, 1.5))


def test_guard_turns_a_bad_command_into_the_controlled_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    f = Follower()
    cmds = _drive(f, 0.0, 2.0)
    v0, steer0 = cmds[-1].speed, cmds[-1].steering_angle
    import minipamayo_ros.control.follower as follower_mod

    monkeypatch.setattr(follower_mod.reg, "pursuit_curvature", lambda x, y: NAN)  # a numerics bug
    bad = f.update(2.0)
    assert bad.status == ControlStatus.FAULT_STOP and _finite(bad) and "not finite" in f.last_fault
    assert bad.speed == pytest.approx(v0 - CFG.stop_decel * 0.02) and bad.steering_angle == steer0
    monkeypatch.setattr(follower_mod.reg, "pursuit_curvature", lambda x, y: 1 / 0)  # an exception
    boom = f.update(2.02)
    assert boom.status == ControlStatus.FAULT_STOP and "ZeroDivisionError" in f.last_fault
    assert boom.speed < bad.speed and f.faults == 2
    monkeypatch.undo()
    assert _drive(f, 2.04, 3.0)[-1].status == ControlStatus.TRACKING  # recovers when the law is sane


def test_guard_checks_every_float_field_of_the_command() -> None:
    from dataclasses import fields

    from minipamayo_ros.safety.command_guard import _FLOAT_FIELDS

    assert set(_FLOAT_FIELDS) == {f.name for f in fields(FollowerCommand) if f.type in ("float", float)}


def test_command_violation_names_the_field() -> None:
    ok = FollowerCommand(0.0, ControlStatus.TRACKING, speed=5.0)
    assert command_violation(ok, CFG, 5.0, False) is None
    assert "speed" in command_violation(replace(ok, speed=CFG.max_speed + 1), CFG, 5.0, False)  # type: ignore[operator]
    assert "steering_angle" in command_violation(replace(ok, steering_angle=1.0), CFG, 5.0, False)  # type: ignore[operator]
    assert "yaw_rate" in command_violation(replace(ok, yaw_rate=NAN), CFG, 5.0, False)  # type: ignore[operator]
    assert "rises" in command_violation(replace(ok, speed=5.5), CFG, 5.0, True)  # type: ignore[operator]


def test_measured_speed_above_max_speed_never_commands_above_it() -> None:
    cfg = replace(CFG, max_speed=5.0)
    f = Follower(cfg)
    cmds = _drive(f, 0.0, 1.0, speed=12.0)
    assert all(c.speed <= 5.0 and c.status != ControlStatus.FAULT_STOP for c in cmds)


def test_trajectory_error_of_a_core_trajectory_uses_the_same_check() -> None:
    good = _plan(1.0).to_trajectory()
    assert trajectory_error(good) is None
    bad = PlannedTrajectory(1.0, np.array([[1.0, NAN], [2.0, 0.0]]), np.ones(2))
    assert "y[0] = nan" in (trajectory_error(bad) or "")


def test_policy_output_check_sees_the_float32_values_the_follower_receives() -> None:
    """msg/Trajectory.msg is float32: a plan inside the limits in float64 can round past them (or
    overflow to inf) on the wire; the policy checks ``as_published()``, what the follower gets."""
    lim = TrajectoryLimits(max_speed=1.1)
    plan = _plan(1.0, speed=1.1)
    assert check_trajectory(plan, lim) is None  # float64: exactly at the limit
    rej = check_trajectory(plan.as_published(), lim)  # float32(1.1) = 1.10000002 > 1.1
    assert rej is not None and rej.field == "speed[0]" and rej.kind == "out_of_range"
    huge = replace(_plan(1.0), uncertainty=1e39)
    assert check_trajectory(huge) is None
    assert check_trajectory(huge.as_published()).kind == "non_finite"  # type: ignore[union-attr]
    assert check_trajectory(_plan(1.0).as_published()) is None


# --- images and context vectors ----------------------------------------------------------------------
def test_raw_image_checked_on_arrival() -> None:
    """Issue 13 defect 6: data longer than step * height was accepted silently."""
    ok = dict(stamp=10.0, now=10.0, max_future=0.1, nbytes=4 * 3 * 2, height=2, width=4, encoding="rgb8",
              channels=3, step=12)
    assert check_raw_image(**ok) is None
    assert check_raw_image(**{**ok, "step": 0}) is None  # 0 = tightly packed
    assert check_raw_image(**{**ok, "step": 16, "nbytes": 32}) is None  # padded rows
    for override, kind, text in [
        ({"nbytes": 24 + 7}, "bad_shape", "data = 31 B"),          # longer than step * height
        ({"nbytes": 23}, "bad_shape", "data = 23 B"),              # truncated
        ({"step": 11}, "bad_shape", "step = 11"),
        ({"height": 0, "nbytes": 0}, "bad_shape", "empty image"),
        ({"channels": None, "encoding": "yuv422"}, "bad_encoding", "'yuv422'"),
        ({"stamp": 30.0}, "future_stamp", "ahead of the ROS clock"),
        ({"stamp": NAN}, "non_finite", "header.stamp = nan"),
        ({"stamp": 9.0, "max_age": 0.5}, "old_stamp", "1.000 s old"),  # would only displace a fresh one
    ]:
        rej = check_raw_image(**{**ok, **override})  # type: ignore[arg-type]
        assert rej is not None and rej.kind == kind and text in str(rej), (override, rej)
    assert check_compressed_image(10.0, 10.0, 0.1, 100) is None
    assert check_compressed_image(10.0, 10.0, 0.1, 0).kind == "bad_shape"  # type: ignore[union-attr]
    assert check_compressed_image(11.0, 10.0, 0.1, 100).kind == "future_stamp"  # type: ignore[union-attr]


def test_context_vector_checked_on_arrival() -> None:
    v = np.zeros(4, np.float32)
    assert check_context(10.0, 10.0, 0.1, 1.0, v, 4) is None
    assert check_context(30.0, 10.0, 0.1, 1.0, v, 4).kind == "future_stamp"  # type: ignore[union-attr]
    assert check_context(8.0, 10.0, 0.1, 1.0, v, 4).kind == "old_stamp"  # type: ignore[union-attr]
    assert str(check_context(10.0, 10.0, 0.1, 1.0, v[:3], 4)) == "context = 3 values: the text model needs 4"
    v[2] = INF
    assert str(check_context(10.0, 10.0, 0.1, 1.0, v, 4)) == "context[2] = inf: not finite"


def test_log_limiter_is_per_key_and_counts_what_it_held_back() -> None:
    from minipamayo_ros.safety.log_limit import LogLimiter

    limit = LogLimiter(2.0)
    assert limit.allow("image", 0.0) == 0
    assert limit.allow("image", 1.0) is None and limit.allow("image", 1.9) is None
    assert limit.allow("odom", 1.0) == 0  # another kind is not hidden by the image flood
    assert limit.allow("image", 2.0) == 2  # logged again, with the 2 held back meanwhile
    assert limit.allow("image", 3.0) is None


# --- issue 19: one source, consistent and possible plans ------------------------------------------
def _arc_plan(stamp: float = 1.0, speed: float = 5.0, kappa: float = 0.0, n: int = 20,
              **fields: object) -> TrajectoryFields:
    s = speed * 0.1 * np.arange(1, n + 1)
    x, y = (np.sin(kappa * s) / kappa, (1 - np.cos(kappa * s)) / kappa) if kappa else (s, 0.0 * s)
    return replace(TrajectoryFields(stamp, "base_link", x, y, np.full(n, speed), 0.1), **fields)


@pytest.mark.parametrize(("change", "kind", "text"), [
    ({"x": np.zeros(20), "y": np.zeros(20), "speed": np.full(20, 8.0)}, "speed_mismatch",
     "x/y[0] = path length 0 m: the speeds cover 0.8 m by then"),
    ({"x": -0.5 * np.arange(1, 21), "y": np.zeros(20)}, "backwards", "x/y[0] = heading 180 deg"),
    ({"y": 2.0 * (-1.0) ** np.arange(20)}, "speed_mismatch", "x/y[0] = 2.06 m from the vehicle"),
    ({"dt": 1e-6}, "out_of_range", "dt = 1e-06: must be in [0.01, 1] s"),
    ({"horizon": 3.0}, "out_of_range", "horizon = 3: must be 20 waypoints x dt 0.1 s = 2 s"),
    ({"speed": np.full(20, 3.0)}, "speed_mismatch", "x/y[2] = 1.5 m from the vehicle: the speeds cover only"),
])
def test_inconsistent_plans_are_rejected_by_the_checks_name(change, kind, text) -> None:
    rej = check_trajectory(replace(_arc_plan(), **change))
    assert rej is not None and rej.kind == kind and text in str(rej), rej


def test_each_physics_check_rejects_its_property_and_names_the_values() -> None:
    lim = TrajectoryLimits()
    assert check_trajectory(_arc_plan(speed=5.0, kappa=0.19), lim) is None   # within the steering limit
    rej = check_trajectory(_arc_plan(speed=2.0, kappa=0.3), lim)             # tighter than it allows
    assert rej is not None and rej.kind == "curvature" and "(tan(max_steer) / wheelbase)" in str(rej)
    rej = check_trajectory(_arc_plan(speed=6.0, kappa=0.19), lim)            # 6.8 m/s^2 lateral
    assert rej is not None and rej.kind == "lateral_accel" and "plan_max_lateral_accel 6" in str(rej)
    v = np.maximum(8.0 - 9.0 * 0.1 * np.arange(1, 21), 0.0)                  # braking at 9 m/s^2
    x = np.cumsum(0.05 * (np.r_[v[0], v[:-1]] + v))
    rej = check_trajectory(TrajectoryFields(1.0, "base_link", x, 0 * x, v, 0.1), lim)
    assert rej is not None and rej.kind == "longitudinal_accel" and "-9 m/s^2" in str(rej)
    v = 5.0 + np.cumsum(np.where(np.arange(20) % 2, -0.7, 0.35))             # +3.5 / -7 m/s^2 in turn
    x = np.cumsum(0.05 * (np.r_[v[0], v[:-1]] + v))
    rej = check_trajectory(TrajectoryFields(1.0, "base_link", x, 0 * x, v, 0.1), lim)
    assert rej is not None and rej.kind == "jerk" and "plan_max_jerk 100" in str(rej)


def test_a_standing_plan_with_noise_passes_and_a_noisy_moving_one_too() -> None:
    """Centimetre noise (a learned planner's) neither makes a standing plan "backwards" nor a moving
    one "curved": geometry is measured on the path thinned to 0.3 m and over 1 m chords."""
    rng = np.random.default_rng(1)
    jitter = rng.normal(0, 0.03, (2, 20))
    still = TrajectoryFields(1.0, "base_link", jitter[0], jitter[1], np.zeros(20), 0.1)
    assert check_trajectory(still) is None
    moving = _arc_plan(speed=3.0, kappa=0.1)
    noisy = replace(moving, x=moving.x + rng.normal(0, 0.03, 20), y=moving.y + rng.normal(0, 0.03, 20))
    assert check_trajectory(noisy) is None


def test_limit_use_is_below_one_exactly_when_the_checks_pass() -> None:
    from minipamayo_ros.safety.plan_checks import Plan, check_plan, limit_use

    lim = TrajectoryLimits().plan
    for f in (_arc_plan(speed=5.0, kappa=0.19), _arc_plan(speed=6.0, kappa=0.19), _arc_plan(kappa=0.05),
              _arc_plan(speed=3.0, x=np.zeros(20))):
        use = limit_use(Plan.of(f.x, f.y, f.speed, f.dt), lim)
        assert (check_plan(f.x, f.y, f.speed, f.dt, lim) is None) == (max(use.values()) <= 1.0), use


def test_producer_resolution_in_the_followers_namespace() -> None:
    from minipamayo_ros.safety.plan_source import resolve_producer

    assert resolve_producer("", "/") == "/policy"
    assert resolve_producer("", "/car7") == "/car7/policy"
    assert resolve_producer("planner", "/car7") == "/car7/planner"
    assert resolve_producer("/sim/expert", "/car7") == "/sim/expert"


def test_source_rules_one_producer_one_live_instance_one_plan_per_stamp() -> None:
    f = Follower(CFG, producer="/policy")
    mine = {"producer": "/policy", "producer_instance": 11}
    for t in np.arange(0.0, 1.0, 0.02):
        f.add_odometry(_odom(float(t), 5.0 * float(t)), now=float(t))
    assert f.set_trajectory(_arc_plan(0.9, sequence=1, **mine), now=1.0) is None
    # another producer, even with fine plans and a newer stamp
    rej = f.set_trajectory(_arc_plan(0.95, producer="/replay", producer_instance=3), now=1.0)
    assert rej is not None and rej.kind == "wrong_producer" and "'/replay' (instance 0x3)" in str(rej)
    # a second live instance of /policy
    rej = f.set_trajectory(_arc_plan(0.95, producer="/policy", producer_instance=12), now=1.0)
    assert rej is not None and rej.kind == "other_instance" and "two nodes with one name?" in str(rej)
    # the same stamp: an identical copy is fine, other content is a conflict
    assert f.set_trajectory(_arc_plan(0.9, sequence=1, **mine), now=1.0) is None
    rej = f.set_trajectory(_arc_plan(0.9, speed=4.0, sequence=2, **mine), now=1.0)
    assert rej is not None and rej.kind == "conflict"
    rej = f.set_trajectory(_arc_plan(0.8, sequence=3, **mine), now=1.0)
    assert rej is not None and rej.kind == "out_of_order"
    assert f.trajectory is not None and f.trajectory.stamp == 0.9 and f.trajectory.sequence == 1
    # the policy restarted: once its last plan is stale, the new instance takes over
    rej = f.set_trajectory(_arc_plan(1.5, producer="/policy", producer_instance=12), now=1.5)
    assert rej is None and f.trajectory.producer_instance == 12  # type: ignore[union-attr]


def test_source_monitor_reports_intruders_and_publishers_as_error() -> None:
    from minipamayo_ros.safety.plan_source import SourceMonitor, check_source

    mon = SourceMonitor("/policy", "/vla/trajectory", hold=3.0)
    held = _arc_plan(1.0, producer="/policy", producer_instance=1).to_trajectory()
    assert mon.report(1.0, None)[0] == OK and mon.report(1.0, held)[0] == OK
    assert mon.graph(["/policy"]) and not mon.graph(["/policy"])
    assert mon.graph(["/intruder", "/policy"])
    level, message, _ = mon.report(1.0, held)
    assert level == ERROR and "2 publishers on /vla/trajectory: /intruder, /policy" in message
    mon.graph(["/policy"])
    rej = check_source("/replay", 5, 1, 1.0, (), held, "/policy", 1.0, 0.5)
    assert rej is not None and mon.rejected(rej, "/replay", 5, 1.0)     # starts: report at once
    assert not mon.rejected(rej, "/replay", 5, 1.5)                      # the same intruder again
    assert mon.rejected(rej, "", 0, 1.6)                                 # another one: at once
    level, message, values = mon.report(2.0, held)
    assert level == ERROR and "'<unnamed>' (instance 0x0)" in message and values["last_intruder"]
    assert mon.report(4.7, held)[0] == OK                                # 3 s without one
    for k in range(20):                                                  # names bounded
        mon.rejected(rej, f"/x{k}", k, 5.0)
    assert len(mon.intruders) == 5


def test_source_monitor_reads_names_again_until_every_publisher_is_named() -> None:
    """A restarted policy's writer is discovered before the message naming its node: the graph
    check's names (read when the count changes) must be read again until it is named, or
    /diagnostics keeps saying `_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_` (full-suite log)."""
    from minipamayo_ros.safety.plan_source import SourceMonitor

    mon = SourceMonitor("/policy", "/vla/trajectory")
    assert mon.graph(["/policy"]) and not mon.names_pending()
    assert mon.graph(["/policy", "_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_"])
    assert mon.names_pending()                           # same count next time: read them again
    assert mon.graph(["/policy", "/policy"]) and not mon.names_pending()
    assert "2 publishers on /vla/trajectory: /policy, /policy" in mon.report(1.0, None)[1]
