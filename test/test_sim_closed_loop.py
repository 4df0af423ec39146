"""ROS-free closed loop: policy -> (latency) -> real follower -> simulated car, ground-truth metrics."""

from __future__ import annotations

import numpy as np

from minipamayo_ros.sim.closed_loop import ClosedLoopSettings, Observation, run_episode, summarize_results
from minipamayo_ros.sim.road import RoadConfig
from minipamayo_ros.sim.world import WorldConfig

SHORT = WorldConfig(road=RoadConfig(length=100.0, start_straight=10.0, end_margin=25.0, event_spacing=20.0,
                                    stop_lines=(0, 1), obstacles=(0, 1)), end_margin=25.0)


def test_expert_oracle_through_the_follower_drives_cleanly() -> None:
    results = [run_episode(seed, None, SHORT) for seed in (200, 201, 202)]
    s = summarize_results(results)
    assert s["finished_fraction"] == 1.0
    assert s["lane_departures"] == 0 and s["collisions"] == 0 and s["stop_line_violations"] == 0
    assert s["cross_track_rms_m"] < 0.15 and s["rejected_trajectories"] == 0


def test_a_blind_policy_leaves_the_lane() -> None:
    seen: list[Observation] = []

    def straight_ahead(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        seen.append(obs)
        t = 0.1 * np.arange(1, 21)
        return np.stack((6.0 * t, 0.0 * t), axis=1), np.full(20, 6.0)

    r = run_episode(4, straight_ahead, settings=ClosedLoopSettings(image_size=(64, 64), max_seconds=25.0))
    assert r.metrics.lane_departures >= 1
    assert seen and seen[0].image.shape == (64, 64, 3) and seen[0].state.shape == (10, 3)
    stamps = [o.stamp for o in seen[:3]]
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)  # 10 Hz policy


def test_invalid_trajectories_are_rejected_and_the_car_stops() -> None:
    def broken(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        return np.full((20, 2), np.nan), np.full(20, 5.0)

    r = run_episode(1, broken, SHORT, ClosedLoopSettings(max_seconds=5.0))
    assert r.policy_calls > 0 and r.rejected_trajectories >= r.policy_calls - 1  # last one in flight
    assert r.metrics.distance_m < 0.5 and not r.finished


def test_manifest_policy_runs_the_model_like_the_node(tmp_path) -> None:
    """An ONNX model (the deterministic probe) loaded by the policy node's loader drives the loop."""
    from minipamayo_ros.policy.probe_model import build_probe_model, expected_outputs
    from minipamayo_ros.sim.closed_loop import manifest_policy

    policy = manifest_policy(str(build_probe_model(tmp_path / "probe", image_size=(64, 64))))
    seen: list[tuple[Observation, np.ndarray]] = []

    def recording(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        points, speeds = policy(obs)
        seen.append((obs, points))
        return points, speeds

    r = run_episode(1, recording, SHORT, ClosedLoopSettings(image_size=(64, 64), max_seconds=3.0))
    assert r.policy_calls == len(seen) > 10
    obs, points = seen[-1]
    want = expected_outputs(obs.image[None], obs.state[None])["waypoints"][0]
    np.testing.assert_allclose(points, want, atol=1e-5)
