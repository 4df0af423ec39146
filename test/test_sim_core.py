"""Simulator core (no ROS): roads, camera projection, rendering, expert, metrics, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from minipamayo_ros import language
from minipamayo_ros.events import Event
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.safety.trajectory_input import trajectory_error
from minipamayo_ros.sim.camera import CameraConfig, pixel_to_ground, project
from minipamayo_ros.sim.expert import recovery_offset, speed_envelope
from minipamayo_ros.sim.metrics import MetricsTracker, corner_offsets, rectangles_overlap
from minipamayo_ros.sim.odometry import OdometryNoise
from minipamayo_ros.sim.road import Obstacle, RoadConfig, generate_road
from minipamayo_ros.sim.world import World, WorldConfig
from minipamayo_ros.trajectory import NUM_WAYPOINTS

#: short roads for closed-loop tests (events still fit between start and end)
SHORT = RoadConfig(length=100.0, start_straight=10.0, end_margin=25.0, event_spacing=20.0,
                   stop_lines=(0, 1), obstacles=(0, 1))
STRAIGHT = RoadConfig(length=200.0, max_curvature=1e-4, stop_lines=(0, 0), obstacles=(0, 0))


# ------------------------------------------------------------------ roads
def test_road_is_deterministic_per_seed_and_within_limits() -> None:
    a, b, c = generate_road(7), generate_road(7), generate_road(8)
    np.testing.assert_array_equal(a.xy, b.xy)
    assert a.stop_lines == b.stop_lines and a.obstacles == b.obstacles
    assert not np.array_equal(a.xy, c.xy)
    for seed in range(20):
        r = generate_road(seed)
        assert np.max(np.abs(r.curvature)) <= RoadConfig().max_curvature + 1e-9
        assert np.max(np.abs(r.heading)) <= RoadConfig().max_heading + 0.01  # discretisation
        assert np.all(np.diff(r.xy[:, 0]) > 0.0)  # never turns back: no self-crossing
        seg = np.hypot(*np.diff(r.xy, axis=0).T)
        np.testing.assert_allclose(seg, RoadConfig().ds, rtol=1e-3)


def test_road_projection_recovers_station_and_offset() -> None:
    road = generate_road(3)
    rng = np.random.default_rng(0)
    for s, d in zip(rng.uniform(5, road.length - 5, 50), rng.uniform(-2.0, 2.0, 50), strict=False):
        x, y = road.points_at(s, d)
        for hint in (None, int(s / 0.5) + 3):
            p = road.project(x, y, hint=hint)
            assert p.s == pytest.approx(s, abs=0.05)
            assert p.d == pytest.approx(d, abs=0.02)


# ------------------------------------------------------------------ camera
def test_projection_of_known_ground_points() -> None:
    cam = CameraConfig()
    # straight ahead on the ground: centre column, row from the depression angle
    for dist in (3.0, 10.0, 40.0):
        (u, v), ok = project(cam, np.array([cam.x_offset + dist, 0.0, 0.0]))
        assert ok
        assert u == pytest.approx(cam.cx)
        assert v == pytest.approx(cam.cy + cam.fy * np.tan(np.arctan2(cam.mount_height, dist) - cam.pitch))
    # a point at camera height far ahead lies on the horizon; left of the axis -> left in the image
    (u, v), _ = project(cam, np.array([1e6, 0.0, cam.mount_height]))
    assert v == pytest.approx(cam.horizon_row, abs=1e-3)
    (u, _), _ = project(cam, np.array([10.0, 2.0, 0.0]))
    assert u < cam.cx
    # behind the camera: masked out
    _, ok = project(cam, np.array([cam.x_offset - 1.0, 0.0, 0.0]))
    assert not ok


def test_pixel_to_ground_inverts_projection() -> None:
    cam = CameraConfig(width=320, height=320, pitch=0.2, hfov=np.deg2rad(70.0))
    pts = np.array([[5.0, -2.0], [12.0, 3.5], [30.0, 0.5]])
    uv, ok = project(cam, np.concatenate((pts, np.zeros((3, 1))), axis=1))
    assert ok.all()
    back, hits = pixel_to_ground(cam, uv)
    assert hits.all()
    np.testing.assert_allclose(back, pts, atol=1e-9)
    _, hits = pixel_to_ground(cam, np.array([[cam.cx, 0.0]]))  # sky
    assert not hits[0]


def test_camera_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="hfov"):
        CameraConfig(hfov=np.deg2rad(10.0))
    with pytest.raises(ValueError, match="size"):
        CameraConfig(width=20)


# ------------------------------------------------------------------ rendering
def test_render_is_deterministic_and_shows_obstacles() -> None:
    w1, w2 = World(5), World(5)
    img1, img2 = w1.render(), w2.render()
    assert img1.shape == (256, 256, 3) and img1.dtype == np.uint8
    np.testing.assert_array_equal(img1, img2)
    assert not np.array_equal(img1, World(6).render())
    # an obstacle 12 m ahead covers the pixel its centre projects to
    world = World(5, WorldConfig(road=STRAIGHT))
    s = world.proj.s + 12.0
    ob = Obstacle(s=s, length=1.0, width=1.6, height=1.4, color=(250, 0, 250))
    with_ob = world.renderer.render(world.road, world.state.pose, world.proj.s, [ob])
    without = world.renderer.render(world.road, world.state.pose, world.proj.s, [])
    centre = world.road.points_at(s - 0.5, 0.0)
    local = Pose2D(centre[0], centre[1]).relative_to(world.state.pose)
    (u, v), _ = project(world.config.camera, np.array([local.x, local.y, 0.7]))
    px_with, px_without = with_ob[int(v), int(u)], without[int(v), int(u)]
    assert px_with[1] < 0.5 * px_with[0] and px_with[1] < 0.5 * px_with[2]  # magenta-ish, shaded
    assert not np.array_equal(px_with, px_without)


def test_render_size_is_configurable() -> None:
    cfg = WorldConfig(camera=CameraConfig(width=320, height=320))
    assert World(1, cfg).render().shape == (320, 320, 3)


# ------------------------------------------------------------------ world + expert
def _drive_expert(world: World, period: float = 0.05, max_time: float = 90.0) -> None:
    while not world.done and world.time < max_time:
        world.step(*world.expert_command(), period)


def test_same_seed_same_trajectory_and_images() -> None:
    runs = []
    for _ in range(2):
        w = World(11, WorldConfig(road=SHORT))
        frames, poses = [], []
        for k in range(60):
            steer, speed = w.expert_command()
            w.step(steer + 0.05 * np.sin(k), speed, 0.05)
            poses.append(w.state.pose.as_array())
            if k % 20 == 0:
                frames.append(w.render())
        runs.append((np.array(poses), frames))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1], strict=False):
        np.testing.assert_array_equal(a, b)


def test_expert_completes_50_random_roads_without_incident() -> None:
    """Zero lane departures, collisions and stop-line violations; every road finished."""
    cfg = WorldConfig(road=SHORT, end_margin=25.0)
    events = 0
    for seed in range(50):
        w = World(1000 + seed, cfg)
        events += len(w.road.stop_lines) + len(w.road.obstacles)
        _drive_expert(w)
        m = w.metrics()
        assert w.done, f"seed {1000 + seed}: did not finish in time ({m})"
        assert (m.lane_departures, m.collisions, m.stop_line_violations) == (0, 0, 0), f"seed {seed}: {m}"
        assert m.stops_completed == len(w.road.stop_lines)
        assert m.max_lateral_accel_mps2 < 2.6
    assert events >= 20  # the scenarios were exercised


def test_expert_plan_is_what_the_expert_drives() -> None:
    w = World(21, WorldConfig(road=SHORT, start_offset=0.6, start_speed=5.0))
    period = 0.02
    for _ in range(50):
        w.step(*w.expert_command(), period)
    plan = w.expert_plan()
    assert trajectory_error(plan.to_trajectory()) is None
    assert plan.points.shape == (NUM_WAYPOINTS, 2) and plan.speeds.shape == (NUM_WAYPOINTS,)
    assert language.in_vocabulary(plan.caption)
    start = w.state.pose
    actual = []
    for _ in range(NUM_WAYPOINTS):
        for _ in range(5):
            w.step(*w.expert_command(), period)
        p = w.state.pose.relative_to(start)
        actual.append((p.x, p.y))
    err = np.hypot(*(np.array(actual) - plan.points).T)
    assert err.mean() < 0.3 and err.max() < 0.6


def test_expert_labels_stop_lines_and_obstacles() -> None:
    seen: set[Event] = set()
    for kind in ("stop", "obstacle"):
        road = replace(STRAIGHT, stop_lines=(1, 1) if kind == "stop" else (0, 0),
                       obstacles=(1, 1) if kind == "obstacle" else (0, 0))
        w = World(2, WorldConfig(road=road))
        captions = set()
        while not w.done and w.time < 60:
            w.step(*w.expert_command(), 0.05)
            if round(w.time / 0.05) % 10 == 0:
                plan = w.expert_plan()
                seen.add(plan.event)
                captions.add(plan.caption)
        if kind == "stop":
            assert {"stopping at stop line ahead", "waiting at stop line"} <= captions
            assert w.metrics().stops_completed == 1
        else:
            assert {"slowing for obstacle in lane ahead", "stopped behind obstacle in lane"} <= captions
            assert w.metrics().collisions == 0
    assert {Event.STOP, Event.OBSTACLE, Event.NONE} <= seen


def test_stop_rule_and_expert_hold_are_separate() -> None:
    """The rule completes after stop_wait of standing; the expert (labels) waits expert_stop_hold."""
    road = replace(STRAIGHT, stop_lines=(1, 1), obstacles=(0, 0))
    cfg = WorldConfig(road=road)
    assert cfg.stop_wait < cfg.expert_stop_hold <= 1.0  # inside the policy's 1 s odometry history
    w = World(2, cfg)
    line = w.road.stop_lines[0]
    completed_at = left_at = stood_since = None
    while not w.done and w.time < 60:
        w.step(*w.expert_command(), 0.01)
        if stood_since is None and w.state.speed < 0.1 and line - w.proj.s < 10.0:
            stood_since = w.time
        if completed_at is None and w.metrics().stops_completed == 0 and line not in w.scene().stop_lines:
            left_at = w.time  # the expert released the line before the rule completed it: wrong
        if stood_since is not None and completed_at is None and w._stops[0].completed:
            completed_at = w.time
        if completed_at is not None and left_at is None and line not in w.scene().stop_lines:
            left_at = w.time
    assert stood_since is not None and completed_at is not None and left_at is not None
    assert completed_at - stood_since == pytest.approx(cfg.stop_wait, abs=0.03)
    assert left_at - stood_since == pytest.approx(cfg.expert_stop_hold, abs=0.03)
    m = w.metrics()
    assert m.stops_completed == 1 and m.stop_line_violations == 0


def test_metrics_catch_a_bad_driver() -> None:
    # constant speed, no steering on a curvy road: leaves the lane
    w = World(4)
    assert np.max(np.abs(w.road.curvature[:300])) > 0.02  # curves within the first 150 m
    while w.time < 25 and not w.done:
        w.step(0.0, 6.0, 0.05)
    assert w.metrics().lane_departures >= 1
    # keeps the lane but ignores the obstacle / the stop line
    for kind in ("stop", "obstacle"):
        road = replace(STRAIGHT, stop_lines=(1, 1) if kind == "stop" else (0, 0),
                       obstacles=(1, 1) if kind == "obstacle" else (0, 0))
        w = World(2, WorldConfig(road=road))
        while not w.done:
            w.step(w.expert_command()[0], 6.0, 0.05)
        m = w.metrics()
        if kind == "stop":
            assert m.stop_line_violations == 1 and m.stops_completed == 0
        else:
            assert m.collisions == 1


def test_world_rejects_non_finite_commands() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        World(1).step(float("nan"), 1.0, 0.1)


def test_odometry_noise_and_drift() -> None:
    exact = World(3)
    drifting = World(3, WorldConfig(odometry=OdometryNoise(yaw_rate_bias=0.02, speed_scale=1.02)))
    for w in (exact, drifting):
        for _ in range(100):
            w.step(0.0, 5.0, 0.05)
    assert exact.odometry().pose == exact.ground_truth().pose
    p, q = drifting.odometry().pose, drifting.ground_truth().pose
    assert np.hypot(p.x - q.x, p.y - q.y) > 0.5


# ------------------------------------------------------------------ pure helpers
def test_speed_envelope_respects_curves_and_stops() -> None:
    road = generate_road(0)
    cfg = World(0).expert.cfg
    grid, env = speed_envelope(road, 0.0, [50.0], cfg)
    assert env[0] == pytest.approx(cfg.cruise_speed) and np.all(env[grid >= 50.0] == 0.0)
    # braking distance before the stop respects the comfortable deceleration
    before = grid < 50.0
    assert np.all(env[before] ** 2 <= 2 * cfg.comfort_decel * (50.0 - grid[before]) + 1e-6)
    kappa = np.abs(road.curvature_at(grid))
    assert np.all(env <= np.sqrt(cfg.max_lat_accel / np.maximum(kappa, 1e-9)) + 1e-9)


def test_recovery_offset_starts_at_state_and_decays() -> None:
    x = np.linspace(0.0, 60.0, 601)
    d = recovery_offset(0.8, -0.05, 6.0, x)
    assert d[0] == pytest.approx(0.8)
    assert (d[1] - d[0]) / 0.1 == pytest.approx(-0.05, abs=0.01)
    assert abs(d[-1]) < 0.01


def test_metrics_helpers() -> None:
    corners = [(-0.8, -0.9), (3.4, -0.9), (3.4, 0.9), (-0.8, 0.9)]
    assert max(corner_offsets(0.0, 0.0, 0.0, corners)) == pytest.approx(0.9)
    assert max(corner_offsets(0.5, 0.0, 0.0, corners)) == pytest.approx(1.4)
    sq = [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert rectangles_overlap(sq, [(0.5, 0.5), (2, 0.5), (2, 2), (0.5, 2)])
    assert not rectangles_overlap(sq, [(1.5, 0), (2, 0), (2, 1), (1.5, 1)])
    t = MetricsTracker()
    for departed in (False, True, True, False, True, False):
        t.update(0.1, cross_track=1.0, speed=1.0, yaw_rate=0.5, departed=departed, colliding=False)
    m = t.summary()
    assert m.lane_departures == 2 and m.lane_departure_time_s == pytest.approx(0.3)
    assert m.distance_m == pytest.approx(0.6) and m.cross_track_rms_m == pytest.approx(1.0)
    assert m.max_lateral_accel_mps2 == pytest.approx(0.5)


def test_longest_standstill_is_the_longest_uninterrupted_stop() -> None:
    t = MetricsTracker()
    for speed, n in ((0.0, 12), (2.0, 5), (0.05, 31), (0.3, 1), (0.0, 4)):  # 1.2 s, 3.1 s, 0.4 s still
        for _ in range(n):
            t.update(0.1, cross_track=0.0, speed=speed, yaw_rate=0.0, departed=False, colliding=False)
    assert t.summary().longest_standstill_s == pytest.approx(3.1)
