"""Follower state machine without ROS: tracking, limits, stale -> stop -> resume, rejection,
parameters, and the closed loop on the kinematic bicycle (the acceptance bar of issue 3)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus, Follower
from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings
from minipamayo_ros.evaluation.tracking import track
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.params import ParameterError, build_config, load_node_yaml, param_specs
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.road import reference_road, road_from_curvature
from minipamayo_ros.trajectory import PlannedTrajectory

REPO = Path(__file__).resolve().parents[1]
CFG = FollowerConfig()
DT = CFG.period


def _straight(stamp: float, speed: float = 5.0, y_end: float = 0.0, n: int = 20) -> PlannedTrajectory:
    t = 0.1 * np.arange(1, n + 1)
    x = speed * t if speed > 0 else 0.1 * np.arange(1, n + 1)
    return PlannedTrajectory(stamp=stamp, points=np.stack((x, y_end * (t / t[-1]) ** 2), 1),
                             speeds=np.full(n, speed))


def _drive_odom(f: Follower, t0: float, t1: float, speed: float = 5.0) -> None:
    """Straight-line odometry along +x at ``speed`` every 20 ms in [t0, t1]."""
    for t in np.arange(t0, t1 + 1e-9, 0.02):
        f.add_odometry(OdometrySample(float(t), Pose2D(speed * t, 0.0, 0.0), speed, 0.0))


def _tracking(speed: float = 5.0, config: FollowerConfig = CFG) -> Follower:
    f = Follower(config)
    _drive_odom(f, 0.0, 1.0, speed)
    assert f.set_trajectory(_straight(0.9, speed), now=1.0) is None
    return f


def test_status_constants_are_those_of_the_message_file() -> None:
    text = (REPO / "msg" / "ControlCommand.msg").read_text()
    for status in ControlStatus:
        assert f"uint8 {status.name}={status.value} " in text
    assert text.count("uint8 ") - 1 == len(ControlStatus)  # the status field itself is uint8 too


def test_no_trajectory_then_no_odometry_statuses() -> None:
    f = Follower()
    cmd = f.update(0.0)
    assert cmd.status == ControlStatus.NO_ODOMETRY and cmd.speed == 0.0
    f.add_odometry(OdometrySample(0.0, Pose2D(), 0.0, 0.0))
    cmd = f.update(0.02)
    assert cmd.status == ControlStatus.NO_TRAJECTORY and cmd.speed == 0.0
    assert f.update(0.02 + CFG.odom_stop_after + 0.01).status == ControlStatus.NO_ODOMETRY


def test_straight_line_tracking() -> None:
    f = _tracking()
    cmd = f.update(1.0)
    assert cmd.status == ControlStatus.TRACKING
    assert cmd.steering_angle == pytest.approx(0.0, abs=1e-9) and cmd.curvature == pytest.approx(0.0)
    assert cmd.lookahead_distance == pytest.approx(5.0 * CFG.lookahead_time)
    assert cmd.lookahead_y == pytest.approx(0.0, abs=1e-9)
    assert cmd.speed == pytest.approx(5.0) and cmd.trajectory_stamp == 0.9


def test_speed_comes_from_the_profile_at_the_lookahead_time() -> None:
    cfg = replace(CFG, max_accel=20.0, max_decel=20.0)
    f = Follower(cfg)
    _drive_odom(f, 0.0, 1.0, 5.0)
    traj = _straight(1.0, 5.0)
    speeds = np.linspace(5.5, 4.55, 20)  # speeds[i] at t = (i + 1) * 0.1; all within one accel step
    f.set_trajectory(replace(traj, speeds=speeds), now=1.0)
    cmd = f.update(1.0)  # t = 0 + lookahead_time = 0.6 s -> index 5
    assert cmd.speed == pytest.approx(speeds[5])


def _crawl(stamp: float, speeds: np.ndarray) -> PlannedTrajectory:
    """A creeping plan: positions integrate ``speeds`` along +x."""
    x = np.cumsum(speeds) * 0.1 + 1e-3 * np.arange(1, 21)
    return PlannedTrajectory(stamp=stamp, points=np.stack((x, 0.0 * x), 1), speeds=speeds)


def test_a_crawl_plan_is_a_planned_stop() -> None:
    """All remaining planned speeds below planned_stop_speed: command 0, not the 0.2 m/s crawl."""
    cfg = replace(CFG, max_decel=20.0)
    f = Follower(cfg)
    _drive_odom(f, 0.0, 1.0, 0.2)
    f.set_trajectory(_crawl(1.0, np.full(20, 0.2)), now=1.0)
    assert f.update(1.0).speed == 0.0
    off = Follower(replace(cfg, planned_stop_speed=0.0))  # rule disabled: the crawl is tracked
    _drive_odom(off, 0.0, 1.0, 0.2)
    off.set_trajectory(_crawl(1.0, np.full(20, 0.2)), now=1.0)
    assert off.update(1.0).speed == pytest.approx(0.2)
    # a plan that starts slowly but speeds up (leaving a stop line) is tracked, not held
    go = Follower(cfg)
    _drive_odom(go, 0.0, 1.0, 0.0)
    go.set_trajectory(_crawl(1.0, np.linspace(0.05, 2.0, 20)), now=1.0)
    assert go.update(1.0).speed > 0.0
    # only the REMAINING plan counts: 0.4 s after the stamp only the slow tail is left
    for threshold, expect_stop in ((cfg.planned_stop_speed, True), (0.0, False)):
        late = Follower(replace(cfg, planned_stop_speed=threshold))
        _drive_odom(late, 0.0, 2.0, 0.2)
        late.set_trajectory(_crawl(2.0, np.r_[1.0, 0.7, 0.4, np.full(17, 0.1)]), now=2.0)  # -3 m/s^2
        first = late.update(2.0)
        assert first.status == ControlStatus.TRACKING and first.speed > 0.0
        _drive_odom(late, 2.02, 2.4, 0.2)
        cmd = late.update(2.4)
        assert cmd.status == ControlStatus.TRACKING
        assert (cmd.speed == 0.0) is expect_stop


def test_standing_at_a_planned_stop_is_timed_and_a_go_plan_resets_it() -> None:
    """The stop-line deadlock made visible: standing while the plan is a stop (or a creep below
    planned_stop_speed) counts up in planned_stop_wait; braking does not count; a go plan ends it."""
    f = Follower(CFG)
    _drive_odom(f, 0.0, 1.0, 2.0)
    f.set_trajectory(_crawl(1.0, np.full(20, 0.1)), now=1.0)
    f.update(1.0)
    assert f.planned_stop_wait(1.0) == 0.0  # still moving at 2 m/s: braking, not standing
    for t in np.arange(1.02, 13.0, 0.02):  # the car stands; the same creep plan keeps coming
        f.add_odometry(OdometrySample(float(t), Pose2D(2.0, 0.0, 0.0), 0.0, 0.0))
        if abs(t * 10 - round(t * 10)) < 1e-6:
            f.set_trajectory(_crawl(float(t), np.linspace(0.0, 0.25, 20)), now=float(t))
        cmd = f.update(float(t))
        assert cmd.status == ControlStatus.TRACKING  # the command ramps down at max_decel, then 0
    assert cmd.speed == 0.0
    assert f.planned_stop_wait(12.98) == pytest.approx(11.96, abs=0.05)
    f.set_trajectory(_crawl(13.0, np.linspace(0.5, 3.0, 20)), now=13.0)  # the policy plans to go
    f.add_odometry(OdometrySample(13.0, Pose2D(2.0, 0.0, 0.0), 0.0, 0.0))
    assert f.update(13.0).speed > 0.0 and f.planned_stop_wait(13.0) == 0.0


def test_steering_clamped_and_rate_limited_speed_accel_limited() -> None:
    f = Follower()
    _drive_odom(f, 0.0, 1.0, 2.0)
    # a left arc at 5 m/s with the curvature the steering allows (0.2 of 0.2023 1/m): the car,
    # driving straight at 2 m/s, falls outside it and pure pursuit asks for more than max_steer
    theta = 5.0 * 0.1 * np.arange(1, 21) / 5.0
    sharp = PlannedTrajectory(stamp=1.0, points=np.stack((5.0 * np.sin(theta), 5.0 * (1 - np.cos(theta))), 1),
                              speeds=np.full(20, 5.0))
    assert f.set_trajectory(sharp, now=1.0) is None
    steer = []
    for i in range(40):
        t = 1.0 + i * DT
        f.add_odometry(OdometrySample(t + 1e-3, Pose2D(2.0 * t, 0.0, 0.0), 2.0, 0.0))
        cmd = f.update(t)
        steer.append(cmd.steering_angle)
        assert abs(cmd.steering_angle) <= CFG.max_steer + 1e-12
        assert cmd.curvature == pytest.approx(math.tan(cmd.steering_angle) / CFG.wheelbase)
        assert cmd.yaw_rate == pytest.approx(cmd.speed * cmd.curvature)
        assert cmd.acceleration <= CFG.max_accel + 1e-9
        # speed capped by lateral acceleration on the commanded curvature
        assert cmd.speed <= math.sqrt(CFG.max_lateral_accel / abs(cmd.curvature)) + 1e-9
    steps = np.diff(np.concatenate(([0.0], steer)))
    assert np.all(steps <= CFG.max_steer_rate * DT + 1e-12)
    assert steer[0] == pytest.approx(CFG.max_steer_rate * DT)  # first tick: one rate step
    assert steer[-1] == pytest.approx(CFG.max_steer)           # saturates at the clamp


def test_stale_trajectory_stop_profile_and_resume() -> None:
    f = _tracking(5.0)
    cmds = []
    t = 1.0
    while t < 4.0:
        f.add_odometry(OdometrySample(t + 1e-3, Pose2D(5.0 * t, 0.0, 0.0), 5.0, 0.0))
        cmds.append(f.update(t))
        t += DT
    status = np.array([c.status for c in cmds])
    speed = np.array([c.speed for c in cmds])
    times = np.array([c.stamp for c in cmds])
    stale = status == ControlStatus.STALE_TRAJECTORY_STOP
    first = int(np.argmax(stale))
    assert np.all(status[:first] == ControlStatus.TRACKING) and np.all(stale[first:])
    assert times[first] - 0.9 == pytest.approx(CFG.trajectory_timeout, abs=DT + 1e-9)
    # constant deceleration at stop_decel down to exactly 0, then it stays 0
    ramp = np.diff(speed[first - 1:])
    moving = speed[first:] > 0.0
    assert np.allclose(ramp[: int(moving.sum())], -CFG.stop_decel * DT)
    stopped_at = times[first + int(moving.sum())]
    assert stopped_at - times[first] <= CFG.stop_time(5.0) + DT
    assert np.all(speed[first + int(moving.sum()):] == 0.0)
    assert all(c.acceleration == pytest.approx(-CFG.stop_decel) for c in cmds[first:first + 10])
    # steering kept following the (stale) path: straight here
    assert all(abs(c.steering_angle) < 1e-9 for c in cmds[first:])
    # fresh data -> tracking again, accelerating from the measured speed (0), limited by max_accel
    x_stop = 5.0 * t
    for _ in range(5):
        f.add_odometry(OdometrySample(t + 1e-3, Pose2D(x_stop, 0.0, 0.0), 0.0, 0.0))
        f.update(t)
        t += DT
    f.add_odometry(OdometrySample(t, Pose2D(x_stop, 0.0, 0.0), 0.0, 0.0))
    assert f.set_trajectory(_straight(t - 0.05, 5.0), now=t) is None
    cmd = f.update(t)
    assert cmd.status == ControlStatus.TRACKING
    assert cmd.speed == pytest.approx(CFG.max_accel * DT)


def test_odometry_on_another_clock_is_never_fresh() -> None:
    f = Follower()
    _drive_odom(f, 1000.0, 1001.0)  # e.g. wall-clock odometry while the node runs on sim time
    assert f.status_at(10.0) == ControlStatus.NO_ODOMETRY
    assert "ahead of the ROS clock" in f.status_reason(10.0)
    assert f.update(10.0).speed == 0.0


def test_status_reasons_name_the_cause() -> None:
    f = _tracking()
    assert "0.100 s old" in f.status_reason(1.0)
    _drive_odom(f, 1.02, 1.6)
    assert "0.700 s old (> trajectory_timeout)" in f.status_reason(1.6)
    assert "odom_stop_after" in f.status_reason(1.6 + CFG.odom_stop_after + 0.01)
    assert "no odometry" in Follower().status_reason(0.0)


def test_odometry_loss_stops_and_holds_steering() -> None:
    f = _tracking(5.0)
    turn = PlannedTrajectory(stamp=1.0, points=np.stack((np.arange(1, 21) * 0.5,
                                                          0.02 * (np.arange(1, 21) * 0.5) ** 2), 1),
                             speeds=np.full(20, 5.0))
    f.set_trajectory(turn, now=1.0)
    held = f.update(1.0).steering_angle
    assert held > 0.0
    cmd = f.update(1.0 + CFG.odom_stop_after + 0.05)
    assert cmd.status == ControlStatus.NO_ODOMETRY
    assert cmd.steering_angle == held and cmd.speed < 5.0


def test_restarted_follower_on_moving_vehicle_ramps_down_from_measured_speed() -> None:
    f = Follower()
    _drive_odom(f, 0.0, 1.0, 8.0)
    cmd = f.update(1.0)
    assert cmd.status == ControlStatus.NO_TRAJECTORY
    assert cmd.speed == pytest.approx(8.0 - CFG.stop_decel * DT)


@pytest.mark.parametrize(
    ("points", "speeds", "stamp", "kind", "fragment"),
    [
        ([[0.1, np.nan], [0.2, 0.0]], [1.0, 1.0], 1.0, "non_finite", "y[0] = nan"),
        ([[0.1, 0.0], [0.2, np.inf]], [1.0, 1.0], 1.0, "non_finite", "y[1] = inf"),
        ([[0.1, 0.0]], [1.0], 1.0, "bad_shape", "at least 2 waypoints"),
        ([[-0.5, 0.0], [-1.0, 0.0]], [5.0, 5.0], 1.0, "backwards", "heading 180 deg"),
        ([[0.1, 0.0], [0.2, 0.0]], [1.0, -1.0], 1.0, "out_of_range", "negative speed"),
        ([[0.1, 0.0], [0.2, 0.0]], [1e6, 1e6], 1.0, "out_of_range", "plan_max_speed"),
        ([[0.1, 0.0], [3e5, 0.0]], [1.0, 1.0], 1.0, "implausible", "reachable"),
        ([[0.0, 0.0], [0.0, 0.0]], [8.0, 8.0], 1.0, "speed_mismatch", "length 0 m: the speeds cover 0.8 m"),
        ([[0.1, 0.0], [0.2, 0.0]], [1.0, 1.0], 1.5, "future_stamp", "ahead of the ROS clock"),
        ([[0.1, 0.0], [0.2, 0.0]], [1.0, 1.0], 0.3, "old_stamp", "old"),
        ([[0.1, 0.0], [0.2, 0.0]], [1.0, 1.0], 0.85, "out_of_order", "older than the trajectory held"),
    ],
)
def test_bad_trajectories_rejected_and_current_one_kept(points, speeds, stamp, kind, fragment) -> None:
    f = _tracking()
    bad = PlannedTrajectory(stamp=stamp, points=np.asarray(points, dtype=float),
                            speeds=np.asarray(speeds, dtype=float))
    rejection = f.set_trajectory(bad, now=1.0)
    assert rejection is not None and rejection.kind == kind and fragment in str(rejection)
    assert f.trajectory is not None and f.trajectory.stamp == 0.9
    assert f.update(1.0).status == ControlStatus.TRACKING


@pytest.mark.parametrize("frame", ["map", "", "odom", "base_link "])
def test_trajectory_in_another_frame_is_rejected(frame: str) -> None:
    """Issue 13 defect 4 (failed before: any frame_id was followed as base_link)."""
    f = _tracking()
    rejection = f.set_trajectory(replace(_straight(0.95), frame_id=frame), now=1.0)
    assert rejection is not None and rejection.kind == "wrong_frame" and repr(frame) in str(rejection)
    assert f.trajectory is not None and f.trajectory.stamp == 0.9
    # a vehicle whose body frame is base_footprint: configured, then that frame is the only one accepted
    g = Follower(replace(CFG, base_frame="base_footprint"))
    _drive_odom(g, 0.0, 1.0)
    assert g.set_trajectory(_straight(0.9), now=1.0).kind == "wrong_frame"  # type: ignore[union-attr]
    assert g.set_trajectory(replace(_straight(0.9), frame_id="base_footprint"), now=1.0) is None


def test_clock_jump_backwards_resets() -> None:
    f = Follower()
    _drive_odom(f, 0.0, 3.0)
    f.set_trajectory(_straight(2.9), now=3.0)
    assert f.update(3.0).status == ControlStatus.TRACKING
    assert f.update(1.0).status == ControlStatus.NO_ODOMETRY  # e.g. the simulation restarted
    assert f.trajectory is None and len(f.history) == 0


# ---------------------------------------------------------------- parameters
def test_yaml_defaults_equal_dataclass_defaults() -> None:
    values = load_node_yaml(REPO / "config" / "follower.yaml", "follower")
    assert build_config(FollowerConfig, values) == FollowerConfig()
    assert set(values) == {s.name for s in param_specs(FollowerConfig)}


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"rate_hz": 5.0}, "'rate_hz'"),
        ({"rate_hz": 250.0}, "'rate_hz'"),
        ({"min_lookahead": 20.0}, "'min_lookahead'"),
        ({"odom_stop_after": 0.5, "trajectory_timeout": 0.4}, "'odom_stop_after'"),
        ({"cmd_vel_type": "ackermann"}, "'cmd_vel_type'"),
        ({"stop_decel": 0.0}, "'stop_decel'"),
    ],
)
def test_bad_parameters_named(values, fragment) -> None:
    with pytest.raises(ParameterError, match=fragment):
        build_config(FollowerConfig, values)


# ---------------------------------------------------------------- closed loop (kinematic bicycle)
def test_closed_loop_reference_road_5mps_with_150ms_latency() -> None:
    """Issue 3 acceptance: |kappa| <= 0.1 1/m road (straight, left curve, S-bend +0.1 -> -0.1 1/m,
    right curve, gentle bend), 5 m/s, trajectories 10 Hz delivered 150 ms late, odometry 50 Hz,
    steering/speed lags and limits of the default vehicle."""
    road = reference_road(0.1)
    assert np.max(np.abs(road.curvature)) == pytest.approx(0.1, rel=1e-3)
    res = track(road, speed=5.0, settings=ClosedLoopSettings(latency=0.15))
    assert res.duration > 25.0 and res.tracking_fraction == 1.0
    assert res.mean_speed == pytest.approx(5.0, abs=0.2)
    assert res.cross_track_rms <= 0.10
    assert res.cross_track_max <= 0.25


def test_closed_loop_constant_radius_steady_state_error() -> None:
    s = np.arange(0.0, 150.0, 0.05)  # scored up to 115 m (35 m end margin)
    road = road_from_curvature(s, np.where(s < 10.0, 0.0, np.minimum((s - 10.0) / 10.0, 1.0) * 0.08))
    res = track(road, speed=4.0, settings=ClosedLoopSettings(latency=0.15))
    steady = res.cross_track[res.times > res.times[-1] - 8.0]  # last 8 s: deep in the circle
    assert abs(np.mean(steady)) < 0.03 and np.ptp(steady) < 0.02


def test_closed_loop_without_motion_compensation_is_worse(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 300 ms latency (trajectories up to 0.4 s old), treating the trajectory as if planned
    now (compensation off) makes the loop oscillate off the road; compensated it stays on the bar.
    (At 150 ms the uncompensated loop is still stable on this smooth road: view from the road is
    nearly translation-invariant; the delay is what destabilises it.)"""
    import minipamayo_ros.control.follower as follower_mod
    from minipamayo_ros.control.motion_compensation import CompensatedPath, plan_polyline

    def uncompensated(traj, history, now, max_extrapolation, extension, at_now=None, geometry=None):
        return CompensatedPath(plan_polyline(traj, extension), Pose2D())

    # the centreline stand-in plans from the lane centre, not from the vehicle: once the car is
    # ~1 m off, its plans jump sideways (inconsistent with their speeds, rejected by the follower's
    # plan checks). Loosened here: this test is about compensation, not about those checks
    settings = ClosedLoopSettings(latency=0.3, follower=replace(CFG, plan_distance_tolerance=5.0))
    good = track(reference_road(0.1), speed=5.0, settings=settings)
    monkeypatch.setattr(follower_mod, "compensate", uncompensated)  # ablation, not a mock
    bad = track(reference_road(0.1), speed=5.0, settings=settings)
    assert good.cross_track_rms <= 0.10 and good.cross_track_max <= 0.25
    assert bad.cross_track_max > 1.0


def test_closed_loop_does_not_amplify_plan_noise() -> None:
    """Each 10 Hz plan shifted sideways by N(0, 0.1 m) (a policy's error): the car's cross-track
    RMS stays below the plans' own 0.1 m (pure pursuit + steering lag act as a low-pass)."""
    res = track(reference_road(0.1), speed=5.0, settings=ClosedLoopSettings(latency=0.15), plan_noise=0.1,
                seed=1)
    assert res.tracking_fraction == 1.0
    assert res.cross_track_rms < 0.1
